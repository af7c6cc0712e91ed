"""Sealed access: an attack declared black-box cannot reach the target, and `invbench check`
fails one that tries (issue "Numbers a researcher can trust", section 4)."""

from __future__ import annotations

import pytest
import torch

from benchmark.access import Oracle, WhiteBoxAccess, released, sealed_target
from benchmark.check import source_problems
from benchmark.cli import main
from benchmark.errors import AccessViolation
from benchmark.registry import ATTACKS, Citation, load_all
from tests import cheating_attacks
from tests.conftest import PROJECT, SMOKE, registered_image_attacks

CHECK_OVERRIDES = [o for o in SMOKE if not o.startswith(("suite=", "progress="))]
CITATION = Citation("A cheating method", "Tester et al.", "Tests", 2026, "https://example.org/c")
CHEATS = {
    "test-reads-release": cheating_attacks.ReadsTheOraclesRelease,
    "test-walks-frames": cheating_attacks.WalksTheCallersFrames,
    "test-reads-globals": cheating_attacks.ReadsTheAccessModulesGlobals,
}


def _model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))


def _oracle(model: torch.nn.Module, budget: int | None = 10) -> Oracle:
    release = released(lambda x: torch.softmax(model(x), -1), lambda p, g: p, torch.Generator())
    return Oracle(release, "scores", budget)


def _reachable(root, depth: int = 6) -> list:
    """Every object reachable from ``root`` through instance state: attributes, slots,
    properties' values, containers and closures of the callables found there (what an attack
    walks without reaching into classes, frames or module globals)."""
    seen, frontier, found = set(), [root], []
    for _ in range(depth):
        following = []
        for item in frontier:
            if id(item) in seen or isinstance(item, (str, bytes, int, float, type(None))):
                continue
            seen.add(id(item))
            found.append(item)
            if isinstance(item, dict):
                following += list(item.values())
            elif isinstance(item, (list, tuple, set)):
                following += list(item)
            following += [c.cell_contents for c in getattr(item, "__closure__", None) or ()]
            following += list(getattr(item, "__dict__", {}).values())
            for name in dir(type(item)):
                if not name.startswith("__"):
                    try:
                        following.append(getattr(item, name))
                    except Exception:
                        pass
        frontier = following
    return found


def test_nothing_an_oracle_holds_leads_to_the_model():
    model = _model()
    oracle = _oracle(model)
    assert not any(item is model for item in _reachable(oracle))
    # the counter and the budget are the harness's: they cannot be reset from outside
    for name, value in (("queries", 0), ("budget", None), ("_release", None)):
        with pytest.raises(AttributeError):
            setattr(oracle, name, value)
    oracle(torch.zeros(4, 2, 2))
    assert oracle.queries == 4 and oracle.remaining() == 6


def test_the_target_runs_only_inside_its_oracle_while_a_black_box_attack_runs():
    model = _model()
    oracle = _oracle(model)
    with sealed_target(model, "scores"):
        assert oracle(torch.zeros(2, 2, 2)).shape == (2, 3)
        with pytest.raises(AccessViolation, match="outside its oracle: access 'scores'"):
            model(torch.zeros(2, 2, 2))
    model(torch.zeros(2, 2, 2))  # disarmed after the attack
    graph_like = torch.nn.Linear(4, 3)  # a target with a partial forward (graph: hidden)
    graph_like.hidden = lambda x, edges: (x @ graph_like.weight.T).relu()  # not its forward
    with sealed_target(graph_like, "label"):
        with pytest.raises(AccessViolation, match="outside its oracle: access 'label'"):
            graph_like.hidden(torch.zeros(5, 4), None)
    assert graph_like.hidden(torch.zeros(5, 4), None).shape == (5, 3)  # restored as it was
    with sealed_target(model, "whitebox"):  # white-box attacks hold the model
        WhiteBoxAccess(model, lambda x: model(x)).model(torch.zeros(1, 2, 2))


def test_the_source_scan_names_each_path_and_passes_every_registered_attack():
    source = (PROJECT / "tests" / "cheating_attacks.py").read_text()
    found = "\n".join(source_problems(source, "cheats.py"))
    for name in ("__closure__", "cell_contents", "_getframe", "f_locals", "f_back", "__globals__"):
        assert f"reads {name}" in found, name
    assert source_problems("import gc\nfrom benchmark.runner import run_cell\n", "x.py") == [
        "x.py:1 imports gc",
        "x.py:2 imports benchmark.runner",
    ]
    assert source_problems("x = torch.stack([a, b])\nsys.exit(0)\n", "x.py") == []
    load_all()
    from benchmark.check import introspection_problems

    assert {e.name: introspection_problems(e) for e in ATTACKS.entries()} == {
        e.name: [] for e in ATTACKS.entries()
    }


@pytest.fixture
def cheating_attacks_registered():
    with registered_image_attacks(
        {name: (cls, "scores", CITATION) for name, cls in CHEATS.items()}
    ) as names:
        yield names


def test_check_fails_each_cheating_attack_at_run_time_and_in_its_source(
    workdir, capsys, cheating_attacks_registered
):
    code = main(
        ["check", f"attack={','.join(cheating_attacks_registered)}", "task=digits"]
        + CHECK_OVERRIDES
    )
    out = capsys.readouterr().out
    assert code == 1
    tables = {
        name: out.split(f"invbench check attack={name}")[1].split("invbench check")[0]
        for name in cheating_attacks_registered
    }
    assert "'Oracle' object has no attribute '_release'" in tables["test-reads-release"]
    for name in ("test-walks-frames", "test-reads-globals"):
        assert (
            "access: AccessViolation: the attack ran the target model's forward" in tables[name]
        ), tables[name]
    for name, table in tables.items():
        assert "sealed access (source): FAIL" in table
        assert "tests/cheating_attacks.py:" in table and "reads __closure__" in table
        assert "registry and schema: pass" in table and "\n  FAIL\n" in table, table
    assert "0 of 3 methods pass" in out
