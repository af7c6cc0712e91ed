"""What an attack is allowed to touch, enforced in code.

- ``whitebox``: :class:`WhiteBoxAccess` hands over the target module itself (frozen, eval mode);
  forward passes are counted through a hook.
- ``scores`` / ``topk`` / ``label``: :class:`Oracle` is a callable returning released
  probabilities computed under ``torch.no_grad`` and detached. It holds no module attribute; each
  call counts its batch size toward the suite's query budget and raises
  :class:`QueryBudgetExceeded` past it. A language model's ``label`` access releases the text it
  generates instead (``Task.label_release``): one query per prompt.

The defense's ``transform_output`` runs on every released output, then the access level's
reduction (top-k or argmax).

Sealing. An :class:`Oracle` holds no reference to its release: the release (a closure over the
target) and the counters live in this module's ``_SEALED`` table, keyed weakly by the oracle, so
no attribute or closure of the object an attack receives leads to the model, and ``queries``
and ``budget`` cannot be reset from outside. While a black-box attack runs, the runner arms
:func:`sealed_target`: the target's forward raises :class:`AccessViolation` unless an oracle is
releasing (the tripwire for an attack that found the model anyway, through frames or module
globals). ``invbench check`` also scans an attack's source for those introspection paths
(:func:`benchmark.check.introspection_problems`).
"""

from __future__ import annotations

import contextvars
import inspect
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch

from benchmark.errors import AccessViolation, QueryBudgetExceeded

_RELEASING = contextvars.ContextVar("invbench_releasing", default=False)


def reduce_to_access(probs: torch.Tensor, access: str, topk: int) -> torch.Tensor:
    """Keep what the access level releases: everything, the k largest, the argmax, or nothing
    (access ``none``: zeros)."""
    if access in ("scores", "whitebox"):
        return probs
    if access == "none":
        return torch.zeros_like(probs)
    if access == "topk":
        values, indices = probs.topk(min(topk, probs.shape[-1]), dim=-1)
        return torch.zeros_like(probs).scatter(-1, indices, values)
    if access == "label":
        return torch.zeros_like(probs).scatter(-1, probs.argmax(-1, keepdim=True), 1.0)
    raise ValueError(f"unknown access level '{access}'")


def released(
    probs_fn: Callable[[Any], torch.Tensor],
    transform: Callable[[torch.Tensor, torch.Generator], torch.Tensor],
    generator: torch.Generator,
) -> Callable[[Any], torch.Tensor]:
    """The model as deployed: probabilities under no_grad, passed through the defense."""

    def release(queries: Any) -> torch.Tensor:
        with torch.no_grad():
            return transform(probs_fn(queries).detach(), generator).detach()

    return release


@dataclass
class _Release:
    """What an oracle must not expose: the release and its counters."""

    release: Callable[[Any], Any]
    budget: int | None
    queries: int = 0


_SEALED: "weakref.WeakKeyDictionary[Oracle, _Release]" = weakref.WeakKeyDictionary()


class Oracle:
    """Black-box access: query in, released output out, counted against a budget. Its only
    state is the access level and k; the release and the counters are sealed (module doc)."""

    __slots__ = ("_access", "_topk", "__weakref__")

    def __init__(
        self, release: Callable[[Any], torch.Tensor], access: str, budget: int | None, topk: int = 5
    ):
        self._access = access
        self._topk = topk
        _SEALED[self] = _Release(release, budget)

    @property
    def access(self) -> str:
        return self._access

    @property
    def topk(self) -> int:
        return self._topk

    @property
    def budget(self) -> int | None:
        return _SEALED[self].budget

    @property
    def queries(self) -> int:
        return _SEALED[self].queries

    def __call__(self, queries: Any) -> torch.Tensor:
        sealed, count = _SEALED[self], len(queries)
        if sealed.budget is not None and sealed.queries + count > sealed.budget:
            raise QueryBudgetExceeded(
                f"the attack asked for {sealed.queries + count} released outputs but the "
                f"suite's query budget is {sealed.budget}; spend fewer queries (see the suite's "
                "budgets)"
            )
        sealed.queries += count
        token = _RELEASING.set(True)
        try:
            out = sealed.release(queries)
        finally:
            _RELEASING.reset(token)
        if isinstance(out, torch.Tensor):
            return reduce_to_access(out, self._access, self._topk).clone()
        return list(out)  # generated text, already what the access level releases

    def remaining(self) -> int | None:
        sealed = _SEALED[self]
        return None if sealed.budget is None else sealed.budget - sealed.queries


@contextmanager
def sealed_target(target: torch.nn.Module, access: str) -> Iterator[None]:
    """While an attack of ``access`` other than white-box runs, the target's forward runs only
    inside an :class:`Oracle`'s release; any other forward raises :class:`AccessViolation`."""
    if access == "whitebox":
        yield
        return

    def guard(module: torch.nn.Module, args: tuple) -> None:
        if not _RELEASING.get():
            raise AccessViolation(
                f"the attack ran the target model's forward outside its oracle: access "
                f"'{access}' sees only what the oracle releases (call access(queries)); declare "
                "access 'whitebox' to use the model"
            )

    handle = target.register_forward_pre_hook(guard)
    partial = PartialForwards(target, lambda rows: guard(target, ()))
    try:
        yield
    finally:
        handle.remove()
        partial.close()


class NoAccess:
    """Access level ``none``: a baseline that must not touch the released model at all."""

    access = "none"
    queries = 0

    def __call__(self, queries: Any) -> torch.Tensor:
        raise PermissionError("this attack declared access 'none' and may not query the model")


def batch_rows(values) -> int:
    """The rows of a call's batch: the first tensor among ``values`` (1 when there is none or
    it is a scalar)."""
    first = next((v for v in values if isinstance(v, torch.Tensor)), None)
    return int(first.shape[0]) if first is not None and first.dim() else 1


class PartialForwards:
    """The target's methods that run part of its forward (an image target's ``features``, a
    graph target's ``hidden``), watched while open: a call made outside the target's own
    forward runs the target as that forward would, so ``on_call(rows)`` sees it first (rows of
    its first tensor argument, as :class:`ForwardCounter` counts a forward). Calls inside a
    forward are part of that forward and pass unseen."""

    METHODS = ("features", "hidden")

    def __init__(self, model: torch.nn.Module, on_call: Callable[[int], None]):
        self._model, self._depth, self._saved = model, 0, {}
        self._hooks = [
            model.register_forward_pre_hook(self._enter),
            model.register_forward_hook(self._leave, always_call=True),
        ]
        for name in self.METHODS:
            method = getattr(model, name, None)
            if inspect.ismethod(method) or callable(model.__dict__.get(name)):
                self._saved[name] = model.__dict__.get(name)  # an instance override, if any
                object.__setattr__(model, name, self._watched(method, on_call))

    def _enter(self, module: torch.nn.Module, inputs: tuple) -> None:
        self._depth += 1

    def _leave(self, module: torch.nn.Module, inputs: tuple, output: Any) -> None:
        self._depth -= 1

    def _watched(self, method: Callable, on_call: Callable[[int], None]) -> Callable:
        def watched(*args: Any, **kwargs: Any) -> Any:
            if not self._depth:
                on_call(batch_rows((*args, *kwargs.values())))
            return method(*args, **kwargs)

        return watched

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        for name, saved in self._saved.items():
            if saved is None:
                self._model.__dict__.pop(name, None)
            else:
                object.__setattr__(self._model, name, saved)
        self._saved = {}


class ForwardCounter:
    """Counts the target's forwards while open: one per row of each batch, passed positionally
    or by keyword (a language model's ``input_ids`` or ``inputs_embeds``), and the calls of its
    partial forwards made outside one (:class:`PartialForwards`).

    With a ``budget`` (the suite's white-box ``forwards``, the same for every attack of a task)
    the count starts at ``spent`` (the forwards of the attack's GAN and student training, charged
    to every cell that uses them) and raises :class:`QueryBudgetExceeded` once it passes the
    budget."""

    def __init__(self, model: torch.nn.Module, budget: int | None = None, spent: int = 0):
        self._rows = 0
        self.budget, self.spent = budget, spent
        self._hook = model.register_forward_hook(self._count, with_kwargs=True)
        # its features or hidden layer read outside a forward: a forward, counted alike
        self._partial = PartialForwards(model, self._add)

    @property
    def rows(self) -> int:
        return self._rows

    @rows.setter
    def rows(self, rows: int) -> None:
        self._rows = rows
        if self.budget is not None and self.spent + rows > self.budget:
            raise QueryBudgetExceeded(
                f"the attack caused {self.spent + rows} target forwards ({self.spent} while its "
                f"GANs or students trained, {rows} in the attack), past the suite's white-box "
                f"budget of {self.budget} forwards (budgets.<task>.forwards); lower its steps, "
                f"samples or training, or raise that budget for every attack of the task"
            )

    def _count(self, module: torch.nn.Module, inputs: tuple, kwargs: dict, output: Any) -> None:
        self.rows += batch_rows(inputs[:1] if inputs else kwargs.values())

    def _add(self, rows: int) -> None:
        self.rows += rows

    def close(self) -> None:
        self._hook.remove()
        self._partial.close()


class WhiteBoxAccess:
    """White-box access: the target module (frozen), plus a counter over its forwards, held to
    the suite's ``forwards`` budget (training forwards ``spent`` included) when it sets one."""

    def __init__(
        self,
        model: torch.nn.Module,
        probs_fn: Callable[[Any], torch.Tensor],
        representations_fn: Callable[[Any], torch.Tensor] | None = None,
        forwards_budget: int | None = None,
        spent: int = 0,
    ):
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self._probs_fn = probs_fn
        self._representations_fn = representations_fn
        self._forwards = ForwardCounter(self.model, forwards_budget, spent)

    @property
    def queries(self) -> int:
        """The target's forwards so far (rows), the white-box attack's spend; an attack that
        evaluates the model from its weights adds what that forward would count."""
        return self._forwards.rows

    @queries.setter
    def queries(self, rows: int) -> None:
        self._forwards.rows = rows

    def probabilities(self, queries: Any) -> torch.Tensor:
        """Differentiable class probabilities of the target (what `scores` would release)."""
        return self._probs_fn(queries)

    def representations(self, queries: Any) -> torch.Tensor:
        """The target's internal representations of the queries (graph tasks: first-layer node
        embeddings on the private graph, MC-GRA's H_A)."""
        if self._representations_fn is None:
            raise PermissionError("this task releases no internal representations")
        return self._representations_fn(queries)

    def close(self) -> None:
        self._forwards.close()
