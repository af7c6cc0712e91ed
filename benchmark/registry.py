"""One registry per kind of component (tasks, attacks, defenses, metrics), in the style of timm.

A method registers itself with a decorator that carries its metadata::

    @register_attack("gmi", modalities=("image",), access="whitebox", version="1.0",
                     citation=Citation(...))
    class GMI(Attack): ...

Every module under ``tasks/``, ``attacks/``, ``defenses/`` and ``metrics/`` is imported by
:func:`load_all`, so a new method is one new file (plus its YAML), nothing else.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmark.methods import Attack, Defense, Task

MODALITIES = ("image", "graph", "text", "embedding")
# The modalities whose models release probability vectors (classes, node labels, next tokens):
# what the output defenses written for probabilities (noise, rounding, top-k, label) apply to.
# An embedding model releases a vector that is no distribution (defenses/embedding_noise.py).
PROBABILITY_RELEASES = ("image", "graph", "text")
# Ordered from most to least information released to the attacker; "none" is for baselines
# that never query the model (their score is the floor a model-using attack must beat).
ACCESS_LEVELS = ("whitebox", "scores", "topk", "label", "none")
DEFENSE_KINDS = ("none", "train", "output")


@dataclass(frozen=True)
class Citation:
    title: str
    authors: str
    venue: str
    year: int
    url: str

    def short(self) -> str:
        return f"{self.authors} ({self.venue} {self.year})"


@dataclass(frozen=True)
class Entry:
    """A registered component and what the harness needs to know about it."""

    name: str
    kind: str
    obj: Any
    modalities: tuple[str, ...]
    version: str
    citation: Citation | None
    access: str | None = None  # attacks only
    defense_kind: str | None = None  # defenses only
    higher_is_better: bool | None = None  # metrics only: the direction a record carries
    extra: dict = field(default_factory=dict)


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, sorted(known)
        close = difflib.get_close_matches(name, self.known, n=1, cutoff=0.4)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        super().__init__(f"unknown {kind} '{name}'.{hint} Known {kind}s: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry:
    """Named components of one kind. ``base``: the class a registered component must subclass
    (its ``required`` methods overridden); a metric must be callable."""

    def __init__(self, kind: str, base: type | None = None):
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry] = {}

    def check_contract(self, name: str, obj: Any) -> None:
        """Fail at registration, naming the fix, when ``obj`` cannot be what this kind is."""
        if self.base is None:
            if not callable(obj):
                raise TypeError(f"{self.kind} '{name}' must be callable, got {obj!r}")
            return
        base = f"{self.base.__module__}.{self.base.__qualname__}"
        if not (isinstance(obj, type) and issubclass(obj, self.base)):
            raise TypeError(f"{self.kind} '{name}' must be a class deriving from {base}")
        missing = [
            method
            for method in getattr(self.base, "required", ())
            if getattr(obj, method) is getattr(self.base, method)
        ]
        if missing:
            raise TypeError(
                f"{self.kind} '{name}' ({obj.__qualname__}) must implement "
                f"{', '.join(missing)} (see {base})"
            )

    def register(
        self,
        name: str,
        *,
        modalities: tuple[str, ...] = MODALITIES,
        version: str = "1.0",
        citation: Citation | None = None,
        access: str | None = None,
        higher_is_better: bool | None = None,
        **extra: Any,
    ) -> Callable[[Any], Any]:
        unknown = set(modalities) - set(MODALITIES)
        if unknown:
            raise ValueError(f"{self.kind} '{name}': unknown modalities {sorted(unknown)}")
        if self.kind == "metric" and not isinstance(higher_is_better, bool):
            raise ValueError(
                f"metric '{name}': declare its direction, higher_is_better=True or False"
            )
        if access is not None and access not in ACCESS_LEVELS:
            raise ValueError(f"{self.kind} '{name}': access must be one of {ACCESS_LEVELS}")

        def decorator(obj: Any) -> Any:
            self.check_contract(name, obj)
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"duplicate {self.kind} name '{name}'")
            # a defense declares its kind once, as the class attribute ``kind``
            defense_kind = getattr(obj, "kind", None) if self.kind == "defense" else None
            if self.kind == "defense" and defense_kind not in DEFENSE_KINDS:
                raise ValueError(
                    f"defense '{name}': kind must be one of {DEFENSE_KINDS}, "
                    f"got {defense_kind!r} (set the class attribute kind)"
                )
            self._entries[name] = Entry(
                name=name,
                kind=self.kind,
                obj=obj,
                modalities=tuple(modalities),
                version=version,
                citation=citation,
                access=access,
                defense_kind=defense_kind,
                higher_is_better=higher_is_better,
                extra=extra,
            )
            return obj

        return decorator

    def get(self, name: str) -> Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.kind, name, list(self._entries)) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        return [self._entries[n] for n in self.names()]

    def __contains__(self, name: str) -> bool:
        return name in self._entries


TASKS = Registry("task", base=Task)
ATTACKS = Registry("attack", base=Attack)
DEFENSES = Registry("defense", base=Defense)
METRICS = Registry("metric")  # a metric is a function: its base is "callable"

register_task = TASKS.register
register_attack = ATTACKS.register
register_defense = DEFENSES.register
register_metric = METRICS.register

_PLUGIN_PACKAGES = ("metrics", "tasks", "attacks", "defenses")


def load_all() -> None:
    """Import every module of the plugin packages so that their decorators run."""
    for package_name in _PLUGIN_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{package_name}.{module.name}")


def incompatibility(task: Entry, attack: Entry, defense: Entry) -> str | None:
    """Why a (task, attack, defense) cell is not run, or None when it is compatible."""
    modality = task.modalities[0]
    if modality not in attack.modalities:
        return f"attack '{attack.name}' does not apply to {modality} tasks"
    if modality not in defense.modalities:
        return f"defense '{defense.name}' does not apply to {modality} tasks"
    if attack.access == "whitebox" and defense.defense_kind == "output":
        return (
            f"white-box attack '{attack.name}' reads the weights, so the output-processing "
            f"defense '{defense.name}' does not apply"
        )
    return None
