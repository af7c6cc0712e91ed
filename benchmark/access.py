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
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from benchmark.errors import QueryBudgetExceeded


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


class Oracle:
    """Black-box access: query in, released output out, counted against a budget."""

    __slots__ = ("_release", "access", "topk", "budget", "queries")

    def __init__(
        self, release: Callable[[Any], torch.Tensor], access: str, budget: int | None, topk: int = 5
    ):
        self._release = release
        self.access = access
        self.topk = topk
        self.budget = budget
        self.queries = 0

    def __call__(self, queries: Any) -> torch.Tensor:
        count = len(queries)
        if self.budget is not None and self.queries + count > self.budget:
            raise QueryBudgetExceeded(
                f"the attack asked for {self.queries + count} released outputs but the suite's "
                f"query budget is {self.budget}; spend fewer queries (see the suite's budgets)"
            )
        self.queries += count
        out = self._release(queries)
        if isinstance(out, torch.Tensor):
            return reduce_to_access(out, self.access, self.topk).clone()
        return list(out)  # generated text, already what the access level releases

    def remaining(self) -> int | None:
        return None if self.budget is None else self.budget - self.queries


class NoAccess:
    """Access level ``none``: a baseline that must not touch the released model at all."""

    access = "none"
    queries = 0

    def __call__(self, queries: Any) -> torch.Tensor:
        raise PermissionError("this attack declared access 'none' and may not query the model")


class WhiteBoxAccess:
    """White-box access: the target module (frozen), plus a query counter over its forwards."""

    def __init__(
        self,
        model: torch.nn.Module,
        probs_fn: Callable[[Any], torch.Tensor],
        representations_fn: Callable[[Any], torch.Tensor] | None = None,
    ):
        self.model = model.eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)
        self.queries = 0
        self._probs_fn = probs_fn
        self._representations_fn = representations_fn
        self._hook = self.model.register_forward_hook(self._count, with_kwargs=True)

    def _count(self, module: torch.nn.Module, inputs: tuple, kwargs: dict, output: Any) -> None:
        """One query per row of the batch, passed positionally or by keyword (a language
        model's ``input_ids`` or ``inputs_embeds``)."""
        first = (
            inputs[0]
            if inputs
            else next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)
        )
        self.queries += int(first.shape[0]) if isinstance(first, torch.Tensor) else 1

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
        self._hook.remove()
