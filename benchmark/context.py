"""What the harness hands a method besides its YAML: the suite's typed budget and where it runs.

:class:`Budget` is the suite's budget for one task (``benchmark/conf/suite/*.yaml``), the same
for every attack of that task. It is typed (attributes) and validated when the cell starts, so
a misspelt key fails before anything trains; it is also a read-only mapping, so
``budget["steps"]`` and ``budget.get("queries")`` read it the way a YAML block reads.

:class:`RunContext` is what the runner decides per cell: the device, bfloat16 autocast, whether
progress bars show. An attack receives it in its constructor.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from benchmark.errors import InvbenchError


@dataclass(frozen=True)
class Budget(Mapping):
    """The suite's budget for one task; None where the suite sets none for it."""

    identities: int | None = None  # attacked private classes (image tasks)
    samples_per_identity: int | None = None  # reconstructions per identity
    steps: int | None = None  # optimisation steps (white-box attacks)
    queries: int | None = None  # released outputs (black-box, label-only attacks)
    forwards: int | None = None  # target forwards of a white-box attack, its training included
    topk: int | None = None  # what a top-k access level releases
    prior_steps: int | None = None  # generator updates of every attack's GAN
    prior_batch_size: int | None = None  # their minibatch
    nodes: int | str | None = None  # attacked node set of a graph task ("all" or a count)
    prompts: int | None = None  # secret prompts of a text or embedding task
    task: str = field(default="", compare=False)  # for messages only

    @classmethod
    def from_suite(cls, task: str, values: Mapping[str, Any]) -> "Budget":
        """The suite's ``budgets.<task>`` block, checked: known keys, positive integers."""
        known = [f.name for f in fields(cls) if f.name != "task"]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InvbenchError(
                f"suite budget of task '{task}' has unknown key(s) {unknown}; the budget keys "
                f"are {known} (benchmark/context.py)"
            )
        checked = {name: cls._checked(task, name, value) for name, value in values.items()}
        return cls(task=task, **checked)

    @staticmethod
    def _checked(task: str, name: str, value: Any) -> int | str:
        if name == "nodes" and value == "all":
            return value
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise InvbenchError(
                f"suite budget {task}.{name} must be a positive integer, got {value!r}"
                + (" (or 'all')" if name == "nodes" else "")
            )
        return value

    def as_dict(self) -> dict[str, Any]:
        """The keys the suite set, as its YAML wrote them (the record's ``budget``)."""
        return {name: self[name] for name in self}

    def __getitem__(self, name: str) -> Any:
        value = getattr(self, name, None) if name != "task" else None
        if value is None:
            raise KeyError(
                f"the suite sets no budget '{name}' for task '{self.task}'; add "
                f"budgets.{self.task or '<task>'}.{name} to the suite's YAML"
            )
        return value

    def __iter__(self) -> Iterator[str]:
        return (
            f.name for f in fields(self) if f.name != "task" and getattr(self, f.name) is not None
        )

    def __len__(self) -> int:
        return sum(1 for _ in self)


@dataclass(frozen=True)
class RunContext:
    """Where and how one cell runs (the runner fills it; benchmark/devices.py decides)."""

    device: torch.device = torch.device("cpu")
    amp: bool = False  # bfloat16 autocast of the latent search
    progress: bool = True  # show progress bars
