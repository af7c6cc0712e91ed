"""The project's import layering (README, Layout): a core inside ``benchmark/`` that imports no
plugin, plugins (tasks, attacks, defenses, metrics) on top of it, the app (cell pipeline, CLI,
check, report) on top of both, and no import cycle anywhere. Read from the sources with ``ast``,
imports inside functions included, so a lazy import cannot hide a cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "tasks", "attacks", "defenses", "metrics", "leaderboard")
PLUGINS = ("tasks", "attacks", "defenses", "metrics")
# benchmark/ modules that drive plugins: the app layer
APP = {
    "benchmark.runner",
    "benchmark.cli",
    "benchmark.check",
    "benchmark.app",
    "benchmark.perf",
    "benchmark.paper_cost",
    "benchmark.scaffold",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports (a ``from package import name`` of a submodule
    counts as that submodule)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name in known)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    known = set(files)
    return {name: project_imports(path, known) - {name} for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_core_imports_no_plugin_and_no_app():
    bad = []
    for name, imports in import_graph().items():
        if name.split(".")[0] != "benchmark" or name in APP:
            continue
        for imported in sorted(imports):
            if imported.split(".")[0] in (*PLUGINS, "leaderboard") or imported in APP:
                bad.append(f"{name} imports {imported}")
    assert not bad, "the core must not import plugins or the app:\n" + "\n".join(bad)


def test_plugins_import_no_app():
    bad = [
        f"{name} imports {imported}"
        for name, imports in import_graph().items()
        if name.split(".")[0] in PLUGINS
        for imported in sorted(imports)
        if imported in APP or imported.split(".")[0] == "leaderboard"
    ]
    assert not bad, "\n".join(bad)


CORE_FUNCTION_LINES = 60


def test_core_functions_are_short():
    """Every function of the core and of the cell pipeline (``benchmark/runner.py``) fits on a
    screen: at most 60 lines, decorators and docstring included."""
    long = []
    for path in sorted((ROOT / "benchmark").glob("*.py")):
        name = module_name(path)
        if name in APP and name != "benchmark.runner":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > CORE_FUNCTION_LINES:
                    long.append(f"{name}.{node.name}: {lines} lines")
    assert not long, "split these into named steps:\n" + "\n".join(long)


def test_the_top_level_packages_belong_to_invbench_alone():
    """The six packages install top-level (README, "Why top-level packages"); this is what
    keeps that honest: no other installed distribution provides a package of the same name
    (which would shadow it, or be shadowed), and each imports from this repository."""
    import importlib
    import importlib.metadata

    owners = importlib.metadata.packages_distributions()
    for package in PACKAGES:
        assert set(owners.get(package, ["invbench"])) == {"invbench"}, (package, owners[package])
        assert Path(importlib.import_module(package).__file__).parent == ROOT / package


def test_every_seed_of_a_plugin_comes_from_derive_seed():
    """A task's random streams are named stages of the cell's seed (``derive_seed(seed,
    "split")``), never the bare seed or an ad-hoc ``[seed, 7]``, so no two streams collide and
    a reader finds each by name."""
    import re

    bare = re.compile(r"(default_rng|manual_seed|RandomState)\(\s*(\[|self\.seed\b|seed\b)")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in PLUGINS
        for path in sorted((ROOT / package).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert offenders == []
