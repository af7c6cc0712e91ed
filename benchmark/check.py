"""``invbench check attack=NAME`` / ``defense=NAME``: what a submitted method must pass.

1. Registry and schema (and, for an attack, its source): the name is registered, its YAML (``benchmark/conf/<kind>/NAME.yaml``)
   exists and names it, the citation is complete (title, authors, venue, year, an http(s) link;
   only the undefended baseline ``none`` has none),
   the access level or defense kind and the modalities are valid, and a ``paper:`` block, if any,
   maps metric names to numbers. The attack's module is scanned for the introspection that
   only reaches past an access level (``introspection_problems``): frames, closures, function
   globals, the garbage collector's object graph, raw memory, the access module's internals.
2. A smoke run on every compatible task of the ``mini`` suite whose data is present, at the
   ``smoke`` suite's budgets, twice with the same seed into two fresh results folders (the
   artifact cache is shared, so the second run reuses the trained target and priors). A cell
   passes when it runs, its output has the task's shape and no NaN (the runner's
   ``check_reconstruction``), it stays within its access level (a black-box attack touching the
   model, running its forward outside the oracle (``benchmark.access.sealed_target``), a
   baseline querying it, or a query budget overrun fails), and both runs give
   bit-identical reconstructions (``record["reconstruction_sha256"]``) and metrics. An attack
   is run against no defense; a defense under a reference attack that applies to it
   (``REFERENCE_ATTACKS``).

The table printed lists each cell's checks as pass/FAIL with the reason; the exit code is 0 only
when everything passes.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from benchmark.config import CONF_DIR, compose_config
from benchmark.errors import (
    AccessViolation,
    InvbenchError,
    QueryBudgetExceeded,
    ReconstructionError,
)
from benchmark.provenance import PROJECT_ROOT
from benchmark.registry import (
    ACCESS_LEVELS,
    ATTACKS,
    DEFENSE_KINDS,
    DEFENSES,
    MODALITIES,
    TASKS,
    Entry,
    incompatibility,
)

# Under which attack a defense is checked: the first of these that applies to the cell.
REFERENCE_ATTACKS = (
    "miface",
    "link-steal-0",
    "prompt-search",
    "gan-random",
    "feature-similarity",
    "geia",
)
# What an attack reads only to reach past its access level: frames (the runner's locals hold
# the target), closures and function globals (the oracle's sealed release), the garbage
# collector's object graph, the target's hooks, raw memory, the access module's internals.
FORBIDDEN_NAMES = {
    "__closure__": "a function's closure cells",
    "cell_contents": "a closure cell's value",
    "__globals__": "a function's module globals",
    "__code__": "a function's code object",
    "f_locals": "a frame's locals",
    "f_globals": "a frame's globals",
    "f_back": "the calling frame",
    "tb_frame": "a traceback's frame",
    "gi_frame": "a generator's frame",
    "_getframe": "the interpreter's frames",
    "currentframe": "the interpreter's frames",
    "getouterframes": "the interpreter's frames",
    "getclosurevars": "a function's closure",
    "get_referrers": "the garbage collector's object graph",
    "get_referents": "the garbage collector's object graph",
    "get_objects": "the garbage collector's object graph",
    "_SEALED": "the oracles' sealed releases",
    "_RELEASING": "the oracles' release flag",
    "_forward_pre_hooks": "the target's hooks (the access tripwire)",
    "_forward_hooks": "the target's hooks (the access counter)",
}
FORBIDDEN_IMPORTS = ("gc", "ctypes", "inspect", "benchmark.access", "benchmark.runner")
CELL_CHECKS = ("runs", "output", "access", "deterministic")
MARKS = {"pass": "pass", "not reached": "-"}


@dataclass
class CellCheck:
    task: str
    attack: str
    defense: str
    results: dict[str, str] = field(default_factory=dict)  # check -> "pass" or the failure
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return all(value == "pass" for value in self.results.values())


def schema_problems(kind: str, entry: Entry) -> list[str]:
    """What is wrong with a method's registration and YAML, one line each."""
    problems = []
    yaml = CONF_DIR / kind / f"{entry.name}.yaml"
    if not yaml.is_file():
        return [f"no YAML: create {yaml.relative_to(PROJECT_ROOT)} with name: {entry.name}"]
    settings = OmegaConf.to_container(OmegaConf.load(yaml), resolve=False)
    if not isinstance(settings, dict) or settings.get("name") != entry.name:
        problems.append(f"{yaml.name}: its 'name' must be {entry.name!r}")
    citation = entry.citation
    if citation is None:
        if entry.defense_kind != "none":  # the undefended baseline cites no paper
            problems.append(
                "no citation: pass citation=Citation(title, authors, venue, year, "
                "url) to the register decorator"
            )
    else:
        for part in ("title", "authors", "venue"):
            if not str(getattr(citation, part)).strip():
                problems.append(f"citation {part} is empty")
        if not isinstance(citation.year, int) or not 1900 <= citation.year <= 2100:
            problems.append(f"citation year {citation.year!r} is not a year")
        if not re.match(r"https?://\S+$", str(citation.url)):
            problems.append(f"citation url {citation.url!r} is not an http(s) link to the paper")
    if not entry.modalities or set(entry.modalities) - set(MODALITIES):
        problems.append(f"modalities {entry.modalities} must be among {MODALITIES}")
    if kind == "attack" and entry.access not in ACCESS_LEVELS:
        problems.append(f"access {entry.access!r} must be one of {ACCESS_LEVELS}")
    if kind == "defense" and entry.defense_kind not in DEFENSE_KINDS:
        problems.append(f"kind {entry.defense_kind!r} must be one of {DEFENSE_KINDS}")
    reported = settings.get("reported") if isinstance(settings, dict) else None
    if reported is not None:
        problems += reported_problems(reported, yaml.name)
    return problems


REPORTED_FIELDS = "task, table, source (a link) and metrics (metric name -> number)"


def reported_problems(reported, filename: str) -> list[str]:
    """A ``reported:`` list: per entry the task (protocol) it was measured on, where in the
    paper (``table``), the paper's link (``source``) and its numbers; optionally the target
    architecture and, for a defense, the attack it was measured against."""
    if not isinstance(reported, list):
        return [f"{filename}: 'reported' must be a list of entries with {REPORTED_FIELDS}"]
    problems = []
    for i, entry in enumerate(reported):
        metrics = entry.get("metrics") if isinstance(entry, dict) else None
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("task"), str)
            and isinstance(entry.get("table"), str)
            and re.match(r"https?://\S+$", str(entry.get("source")))
            and isinstance(metrics, dict)
            and metrics
            and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()
            )
        ):
            problems.append(f"{filename}: reported[{i}] needs {REPORTED_FIELDS}; got {entry!r}")
    return problems


def source_problems(source: str, filename: str) -> list[str]:
    """The lines of ``source`` that read past an access level (``FORBIDDEN_NAMES`` as an
    attribute, a name or a string, e.g. ``getattr(f, "__closure__")``; ``FORBIDDEN_IMPORTS``)."""
    problems = []
    for node in ast.walk(ast.parse(source, filename)):
        name = (
            node.attr
            if isinstance(node, ast.Attribute)
            else node.id
            if isinstance(node, ast.Name)
            else node.value
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            else None
        )
        if name in FORBIDDEN_NAMES:
            problems.append(f"{filename}:{node.lineno} reads {name} ({FORBIDDEN_NAMES[name]})")
        modules = (
            [alias.name for alias in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        for module in modules:
            if module.split(".")[0] in FORBIDDEN_IMPORTS or module in FORBIDDEN_IMPORTS:
                problems.append(f"{filename}:{node.lineno} imports {module}")
    return problems


def introspection_problems(entry: Entry) -> list[str]:
    """An attack's module scanned by ``source_problems``; each line says what to drop."""
    path = Path(inspect.getsourcefile(entry.obj))
    try:
        shown = path.relative_to(PROJECT_ROOT)
    except ValueError:
        shown = path
    return [
        f"{problem}: an attack receives only what its access level releases (its access, "
        "victims, prior and budget); remove the introspection"
        for problem in source_problems(path.read_text(), str(shown))
    ]


def methods_for_paths(paths: list[str]) -> list[tuple[str, str]]:
    """(kind, name) of the registered methods whose module or YAML is among ``paths`` (paths
    relative to the repository root, as ``git diff --name-only`` prints them)."""
    chosen: list[tuple[str, str]] = []
    for kind, registry in (("attack", ATTACKS), ("defense", DEFENSES)):
        modules = {}
        for entry in registry.entries():
            module = entry.obj.__module__
            modules.setdefault(module.replace(".", "/") + ".py", []).append(entry.name)
        for path in paths:
            names = modules.get(path, [])
            if path.startswith(f"benchmark/conf/{kind}/") and path.endswith(".yaml"):
                stem = Path(path).stem
                names = [stem] if stem in registry else []
            chosen += [(kind, n) for n in names if (kind, n) not in chosen]
    return chosen


def changed_paths(since: str) -> list[str]:
    """The files changed between ``since`` (a git ref) and the working tree."""
    done = subprocess.run(
        ["git", "diff", "--name-only", since], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise InvbenchError(f"git diff --name-only {since} failed: {done.stderr.strip()}")
    return done.stdout.split()


def cells_to_check(kind: str, entry: Entry, tasks: list[str]) -> list[tuple[str, str, str]]:
    """(task, attack, defense) for every task the method applies to."""
    cells = []
    for task in tasks:
        task_entry = TASKS.get(task)
        if kind == "attack":
            defense = DEFENSES.get("none")
            if incompatibility(task_entry, entry, defense) is None:
                cells.append((task, entry.name, "none"))
            continue
        for attack in REFERENCE_ATTACKS:
            if (
                attack in ATTACKS
                and incompatibility(task_entry, ATTACKS.get(attack), entry) is None
            ):
                cells.append((task, attack, entry.name))
                break
    return cells


def _failure(error: str | None) -> tuple[str, str]:
    """Which check a failed record's error belongs to."""
    text = error or "unknown error"
    name = text.split(":", 1)[0]
    if name == ReconstructionError.__name__:
        return "output", text
    if name in (QueryBudgetExceeded.__name__, AccessViolation.__name__, "PermissionError") or (
        name == "AttributeError" and "Oracle" in text
    ):
        return "access", text
    return "runs", text


def _same_result(first: dict, second: dict) -> bool:
    """Bit-identical reconstructions (their sha256) and equal metrics."""

    def values(record: dict) -> dict:
        return {k: v.get("value") for k, v in (record.get("metrics") or {}).items()}

    a, b = values(first), values(second)
    return (
        first.get("reconstruction_sha256") == second.get("reconstruction_sha256")
        and a.keys() == b.keys()
        and all(
            a[k] == b[k]
            or (
                isinstance(a[k], float)
                and isinstance(b[k], float)
                and math.isnan(a[k])
                and math.isnan(b[k])
            )
            for k in a
        )
    )


def check_cell(
    task: str, attack: str, defense: str, base_overrides: list[str], workdir: Path
) -> CellCheck:
    from benchmark.runner import run_cell

    result = CellCheck(task, attack, defense)
    started = time.perf_counter()
    records = []
    for run in ("first", "second"):
        cfg = compose_config(
            [
                f"task={task}",
                f"attack={attack}",
                f"defense={defense}",
                "suite=smoke",
                "progress=false",
                *base_overrides,
                f"paths.results={workdir / run}",
            ]
        )
        records.append(run_cell(cfg))
    result.seconds = time.perf_counter() - started
    result.results = {check: "pass" for check in CELL_CHECKS}
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        check, reason = _failure(failed[0]["error"])
        result.results[check] = reason
        for later in CELL_CHECKS[CELL_CHECKS.index(check) + 1 :]:
            result.results[later] = "not reached"
        if check != "runs":
            result.results["runs"] = "pass"
        return result
    if not _same_result(*records):
        result.results["deterministic"] = (
            "two runs with the same seed gave different reconstructions: draw randomness "
            "from the `generator` passed to run() (or torch's seeded global state), never "
            "from time or an unseeded source"
        )
    return result


def run_check(
    kind: str, name: str, tasks: list[str], base_overrides: list[str]
) -> tuple[dict[str, list[str]], list[CellCheck]]:
    """The static problems of one method (per check: registry and schema, and an attack's
    source scan) and its smoke-run checks."""
    entry = (ATTACKS if kind == "attack" else DEFENSES).get(name)
    problems = {"registry and schema": schema_problems(kind, entry)}
    if kind == "attack":
        problems["sealed access (source)"] = introspection_problems(entry)
    with tempfile.TemporaryDirectory(prefix=f"invbench-check-{name}-") as tmp:
        cells = [
            check_cell(task, attack, defense, base_overrides, Path(tmp))
            for task, attack, defense in cells_to_check(kind, entry, tasks)
        ]
    return problems, cells


def passed(problems: dict[str, list[str]], cells: list[CellCheck]) -> bool:
    """A method passes with no static problem and at least one cell, every cell passing."""
    return not any(problems.values()) and bool(cells) and all(c.passed for c in cells)


def format_table(
    kind: str,
    name: str,
    problems: dict[str, list[str]],
    cells: list[CellCheck],
    skipped: dict[str, str],
) -> str:
    lines = [f"invbench check {kind}={name}"]
    for check, found in problems.items():
        lines.append(f"  {check}: {'pass' if not found else 'FAIL'}")
        lines += [f"    - {p}" for p in found]
    header = (
        f"  {'task':<14} {'attack':<18} {'defense':<18} "
        + " ".join(f"{c:<13}" for c in CELL_CHECKS)
        + " seconds"
    )
    lines.append(header)
    for cell in cells:
        marks = " ".join(f"{MARKS.get(cell.results[c], 'FAIL'):<13}" for c in CELL_CHECKS)
        lines.append(
            f"  {cell.task:<14} {cell.attack:<18} {cell.defense:<18} {marks} {cell.seconds:.1f}"
        )
        lines += [
            f"    {c}: {cell.results[c]}"
            for c in CELL_CHECKS
            if cell.results[c] not in ("pass", "not reached")
        ]
    for task, reason in skipped.items():
        lines.append(f"  {task:<14} skipped: {reason.splitlines()[0]}")
    if not cells:
        lines.append("  FAIL: no mini task this method applies to could be run")
    lines.append(f"  {'PASS' if passed(problems, cells) else 'FAIL'}")
    return "\n".join(lines)
