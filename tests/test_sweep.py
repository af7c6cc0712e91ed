"""End to end: the smoke sweep, resume, trainings per target, failures, a killed sweep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from benchmark.cache import ArtifactCache
from benchmark.cli import main, run_hydra
from benchmark.methods import Attack
from benchmark.registry import ATTACKS, register_attack
from leaderboard.report import build_report
from tests.conftest import PROJECT, SMOKE

pytestmark = pytest.mark.slow

EXPECTED_CELLS = {
    "digits/gmi__none__s0.json",
    "digits/gmi__label-smoothing__s0.json",
    "digits/gan-random__none__s0.json",
    "digits/gan-random__label-smoothing__s0.json",
    "digits/gan-random__output-noise__s0.json",
    "sbm-citation/link-steal-0__none__s0.json",
    "sbm-citation/link-steal-0__output-noise__s0.json",
    "sbm-citation/link-steal-0__label-smoothing__s0.json",
    "sbm-citation/feature-similarity__none__s0.json",
    "sbm-citation/feature-similarity__output-noise__s0.json",
    "sbm-citation/feature-similarity__label-smoothing__s0.json",
    "records/prompt-search__none__s0.json",
    "records/prompt-search__output-noise__s0.json",
}
COMPARED = [
    "suite",
    "task",
    "attack",
    "defense",
    "attack_acc@1",
    "attack_acc@1_low",
    "attack_acc@1_high",
    "knn_dist",
    "auc",
    "auc_low",
    "ap",
    "bleu",
    "token_f1",
    "exact_match",
    "utility_test_accuracy",
    "queries",
    "n_seeds",
    "n_failed",
]


def _records(results: Path) -> dict[str, dict]:
    root = results / "smoke"
    return {p.relative_to(root).as_posix(): json.loads(p.read_text()) for p in root.rglob("*.json")}


# The harness checks below use the first methods of each family; every graph method against
# every graph defense is swept in tests/test_graph_methods.py.
HARNESS_SWEEP = [
    *SMOKE,
    "attack=[gmi,gan-random,link-steal-0,feature-similarity,prompt-search]",
    "defense=[none,output-noise,label-smoothing]",
]


def test_smoke_sweep_resume_and_one_training_per_target(workdir, capsys):
    assert main(["bench", *HARNESS_SWEEP]) == 0
    records = _records(workdir / "results")
    assert set(records) == EXPECTED_CELLS  # incompatible cells are n/a: no record
    assert all(r["status"] == "ok" for r in records.values()), [
        r["error"] for r in records.values()
    ]
    record = records["digits/gmi__none__s0.json"]
    for field in (
        "schema_version",
        "config_hash",
        "git",
        "environment",
        "versions",
        "budget",
        "cost",
        "metrics",
        "utility",
        "provenance",
    ):
        assert record[field] is not None, field
    assert record["metrics"]["attack_acc@1"]["higher_is_better"] is True
    assert record["metrics"]["knn_dist"]["higher_is_better"] is False
    assert 0 < record["provenance"]["evaluator"]["test_accuracy"] <= 1
    # white-box queries are the attack's own forward passes: steps x identities x samples
    assert record["cost"]["queries"] == 3 * 3 * 2 and record["cost"]["peak_rss_mb"] > 0
    assert records["digits/gan-random__none__s0.json"]["cost"]["queries"] == 0
    assert records["records/prompt-search__none__s0.json"]["cost"]["queries"] <= 600

    trainings = ArtifactCache(workdir / "cache").trainings()
    kinds = [t["kind"] for t in trainings]
    # digits: none + label-smoothing; sbm-citation: the same two; records: none, reused by
    # output-noise (an output defense does not change the weights). Never once per attack.
    assert kinds.count("target") == 5 and kinds.count("evaluator") == 1
    assert kinds.count("prior") == 1  # gmi and gan-random share the public GAN prior

    site = workdir / "site"
    html = (site / "index.html").read_text()
    assert "n/a" in html and "https://arxiv.org/abs/1911.07135" in html
    table = pd.read_csv(site / "leaderboard.csv")
    assert len(table) == len(EXPECTED_CELLS)
    assert json.loads((site / "leaderboard.json").read_text())["records"] == len(EXPECTED_CELLS)

    capsys.readouterr()
    assert main(["bench", *HARNESS_SWEEP]) == 0
    out = capsys.readouterr().out
    assert out.count("[cached]") == len(EXPECTED_CELLS)
    assert len(ArtifactCache(workdir / "cache").trainings()) == len(trainings)
    assert _records(workdir / "results") == records


def test_two_workers_share_each_artifact_and_write_every_record(workdir, capsys):
    # The first two cells (gmi x none, gmi x label-smoothing) start together: each trains its
    # own target, then both need the same evaluator and GAN prior at the same moment; one
    # worker trains each while the other waits on its lock, then loads it.
    sweep = [
        *SMOKE,
        "task=digits",
        "attack=[gmi,gan-random]",
        "defense=[none,label-smoothing]",
        "jobs=2",
    ]
    assert main(["bench", *sweep]) == 0
    assert "invbench bench: 2 worker processes" in capsys.readouterr().out
    records = _records(workdir / "results")
    assert set(records) == {
        f"digits/{a}__{d}__s0.json"
        for a in ("gmi", "gan-random")
        for d in ("none", "label-smoothing")
    }
    assert all(r["status"] == "ok" for r in records.values())
    trainings = ArtifactCache(workdir / "cache").trainings()
    assert sorted(t["kind"] for t in trainings) == ["evaluator", "prior", "target", "target"]
    target_pids = {t["pid"] for t in trainings if t["kind"] == "target"}
    # the two targets were trained at once, by two worker processes, not by this one
    assert len(target_pids) == 2 and os.getpid() not in target_pids


def test_launcher_slurm_runs_each_cell_as_a_submitit_job(workdir, capsys):
    """launcher=slurm's code path on submitit's local executor (launcher=submitit-local): each
    cell is a pickled job in its own process with its own log, the jobs share the artifact
    cache through its locks, and the records land in the results folder."""
    sweep = [
        *SMOKE,
        "task=digits",
        "attack=[gmi,gan-random]",
        "defense=none",
        "launcher=submitit-local",
    ]
    assert main(["bench", *sweep]) == 0
    assert "every cell is a job of launcher=submitit-local" in capsys.readouterr().out
    records = _records(workdir / "results")
    assert set(records) == {"digits/gmi__none__s0.json", "digits/gan-random__none__s0.json"}
    assert all(r["status"] == "ok" for r in records.values())
    logs = sorted((workdir / "results" / ".submitit").glob("*/*_log.out"))
    assert len(logs) == 2
    assert {
        line.split(":")[0]
        for log in logs
        for line in log.read_text().splitlines()
        if line.startswith("[ok]")
    } == {"[ok] smoke/digits gmi x none s0", "[ok] smoke/digits gan-random x none s0"}
    trainings = ArtifactCache(workdir / "cache").trainings()
    assert sorted(t["kind"] for t in trainings) == ["evaluator", "prior", "target"]
    assert os.getpid() not in {t["pid"] for t in trainings}  # trained inside the jobs


def test_launcher_slurm_settings_are_overrides():
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="benchmark.conf", version_base="1.3"):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=[
                "launcher=slurm",
                "hydra.launcher.partition=cpu",
                "hydra.launcher.array_parallelism=8",
                "paths.results=/shared/r",
            ],
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.partition, launcher.array_parallelism) == ("cpu", 8)
    assert launcher.submitit_folder == "/shared/r/.submitit/%j"


def test_an_unknown_launcher_exits_2_naming_the_choices(workdir, capsys):
    assert (
        main(["bench", *SMOKE, "task=digits", "attack=gmi", "defense=none", "launcher=slrum"]) == 2
    )
    err = capsys.readouterr().err
    assert "slurm" in err and "submitit-local" in err


def test_jobs_must_be_auto_or_a_positive_integer(workdir, capsys):
    assert main(["bench", *SMOKE, "task=digits", "attack=gmi", "defense=none", "jobs=0"]) == 2
    assert "jobs must be 'auto' or a positive integer" in capsys.readouterr().err


def _metrics_of_one_cell(workdir: Path, name: str) -> dict:
    os.environ["INVBENCH_RESULTS"] = str(workdir / name / "results")
    os.environ["INVBENCH_CACHE"] = str(workdir / name / "cache")
    assert main(["run", "task=digits", "attack=gmi", "defense=none", *SMOKE]) == 0
    record = json.loads((workdir / name / "results/smoke/digits/gmi__none__s0.json").read_text())
    return {"metrics": record["metrics"], "utility": record["utility"]}


def test_the_same_cell_twice_gives_identical_metrics(workdir):
    # Two fresh caches: the target, evaluator, GAN prior and attack are all recomputed.
    assert _metrics_of_one_cell(workdir, "a") == _metrics_of_one_cell(workdir, "b")


class _Raises(Attack):
    def run(self, access, victims, prior, budget, generator):
        raise RuntimeError("boom <script>alert(1)</script>")


class _WrongShape(Attack):
    def run(self, access, victims, prior, budget, generator):
        return torch.zeros(len(victims.classes), 1, 8, 8)


class _NaN(Attack):
    def run(self, access, victims, prior, budget, generator):
        shape = (len(victims.classes), victims.per_class, *victims.image_shape)
        return torch.full(shape, float("nan"))


class _OverBudget(Attack):
    """Asks the released model for one output more than the suite's query budget allows."""

    def run(self, access, victims, prior, budget, generator):
        images = torch.zeros(budget["queries"] // 2, *victims.image_shape)
        access(images)
        access(images)
        access(images[:1])


@pytest.fixture
def faulty_attacks():
    names = {
        "test-raises": _Raises,
        "test-wrong-shape": _WrongShape,
        "test-nan": _NaN,
        "test-over-budget": _OverBudget,
    }
    for name, cls in names.items():
        register_attack(
            name, modalities=("image",), access="scores" if cls is _OverBudget else "whitebox"
        )(cls)
    yield list(names)
    for name in names:
        ATTACKS._entries.pop(name)


def test_failing_methods_give_failed_records_and_the_sweep_goes_on(workdir, faulty_attacks):
    run_hydra(
        [
            "--multirun",
            "task=digits",
            "attack=gmi",
            "defense=none",
            f"attack.name={','.join(faulty_attacks)},gmi",
            *SMOKE,
        ]
    )
    records = _records(workdir / "results")
    errors = {k.split("/")[1].split("__")[0]: r["error"] for k, r in records.items()}
    assert errors["test-raises"].startswith("RuntimeError: boom")
    assert (
        "ReconstructionError: expected reconstructions of shape (3, 2, 1, 16, 16)"
        in errors["test-wrong-shape"]
    )
    assert "NaN" in errors["test-nan"]
    assert errors["test-over-budget"].startswith(
        "QueryBudgetExceeded: the attack asked for 201 released outputs but the suite's query "
        "budget is 200"
    )
    assert records["digits/test-over-budget__none__s0.json"]["cost"]["queries"] == 200
    assert errors["gmi"] is None and records["digits/gmi__none__s0.json"]["status"] == "ok"
    html = build_report(workdir / "results", workdir / "site").read_text()
    assert html.count('class="failed"') >= 3
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html


def test_a_white_box_attack_that_raises_still_gives_the_target_back_unwatched(
    workdir, faulty_attacks, monkeypatch
):
    """The forward counter's hook and partial-forward wrappers come off the target when the
    attack raises, as when it succeeds: a later cell on the same target must not count into, or
    be stopped by, the failed cell's budget."""
    from benchmark import access

    closed, close = [], access.WhiteBoxAccess.close
    monkeypatch.setattr(
        access.WhiteBoxAccess, "close", lambda self: closed.append(self) or close(self)
    )
    main(["run", "task=digits", "attack=gmi", "attack.name=test-raises", "defense=none", *SMOKE])
    record = next(iter(_records(workdir / "results").values()))
    assert record["status"] == "failed" and record["error"].startswith("RuntimeError: boom")
    assert len(closed) == 1
    target = closed[0].model
    assert not target._forward_hooks and not target._forward_pre_hooks
    assert "features" not in vars(target)


def _bench_process(workdir: Path, name: str) -> subprocess.Popen:
    env = dict(
        os.environ,
        INVBENCH_RESULTS=str(workdir / name / "results"),
        INVBENCH_CACHE=str(workdir / name / "cache"),
        INVBENCH_SITE=str(workdir / name / "site"),
        PYTHONUNBUFFERED="1",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "benchmark.cli", "bench", *HARNESS_SWEEP],
        cwd=PROJECT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def test_a_killed_sweep_resumes_to_the_uninterrupted_leaderboard(workdir):
    uninterrupted = _bench_process(workdir, "full")
    assert uninterrupted.wait(timeout=900) == 0, uninterrupted.stdout.read()

    killed = _bench_process(workdir, "killed")
    results = workdir / "killed" / "results"
    deadline = time.time() + 600
    while len(list(results.rglob("*.json"))) < 2 and time.time() < deadline:
        time.sleep(0.2)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    done_before = len(list(results.rglob("*.json")))
    assert 2 <= done_before < len(EXPECTED_CELLS)

    resumed = _bench_process(workdir, "killed")
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out
    assert out.count("[cached]") == done_before
    assert out.count("[ok]") == len(EXPECTED_CELLS) - done_before

    full = pd.read_csv(workdir / "full/site/leaderboard.csv")[COMPARED]
    again = pd.read_csv(workdir / "killed/site/leaderboard.csv")[COMPARED]
    pd.testing.assert_frame_equal(full, again)


def test_perf_times_cold_and_warm_sweeps(workdir, capsys):
    from benchmark.perf import main as perf

    out = workdir / "perf"
    assert (
        perf(
            [
                "--jobs",
                "1,2",
                "--work",
                str(workdir / "runs"),
                "--out",
                str(out),
                "--vector-steps",
                "2",
                *SMOKE,
                "task=digits",
                "attack=[gmi,gan-random]",
                "defense=[none,label-smoothing]",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    figures = json.loads(next(out.glob("perf-*.json")).read_text())
    cold_1, cold_2 = figures["cold"]
    assert (cold_1["jobs"], cold_2["jobs"]) == (1, 2)
    assert cold_1["cells"] == cold_2["cells"] == 4 and cold_1["failed"] == 0
    # cold: two targets, the evaluator, the GAN prior; warm: every cell again, nothing trained
    assert cold_1["trainings"] == cold_2["trainings"] == 4
    assert figures["warm"]["cells"] == 4 and figures["warm"]["trainings"] == 0
    assert figures["warm"]["cache_hit_rate"] == 1.0 and cold_1["cache_hit_rate"] < 1.0
    assert figures["speedup"]["2"] == round(cold_1["wall_seconds"] / cold_2["wall_seconds"], 2)
    assert set(figures["per_attack"]) == {"gmi", "gan-random"}
    assert all(c["peak_rss_mb"] > 0 for c in cold_2["per_cell"])
    assert "wall time jobs=1 / jobs=2" in printed and "cache hit rate 1.0" in printed
    vector = figures["gmi_vectorisation"]  # 5 identities x 6 latents, batched and looped
    assert vector["steps"] == 2 and vector["batched_seconds"] > 0
    assert vector["speedup"] == round(
        vector["per_identity_loop_seconds"] / vector["batched_seconds"], 2
    )
