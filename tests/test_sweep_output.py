"""What a sweep and the command line print (issue 31, section 4): a progress line instead of
Hydra's job lines, one line per failed cell, one line per metric whose weights are absent (and no
download in any cell), no library deprecation warnings; ``run``/``bench --help``, ``run --cfg
job``, and ``list`` from its index without importing torch."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from benchmark.cli import main
from benchmark.config import group_choices
from benchmark.listing import (
    PLUGIN_PACKAGES,
    SOURCES,
    format_listing,
    index_path,
    read_index,
    registry_rows,
    source_digest,
    write_index,
)
from benchmark.methods import Attack
from benchmark.progress import SweepProgress, report_cell
from benchmark.registry import ATTACKS, DEFENSES, METRICS, TASKS, Citation
from metrics.fid import FID_WEIGHTS
from metrics.lpips_distance import ALEXNET_WEIGHTS
from tests.conftest import PROJECT, SMOKE, registered_image_attacks

# SMOKE's trainings shrunk further (the output is under test, not the numbers), with the progress
# display on (SMOKE turns it off)
SHRUNK = {
    "++task.target.epochs=2": "++task.target.epochs=1",
    "++task.sizes.train=300": "++task.sizes.train=100",
}
TINY = [SHRUNK.get(o, o) for o in SMOKE]
SHOWN = [o for o in TINY if o != "progress=false"]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One artifact cache for the sweeps of this module: the digits target, evaluator and GAN
    prior are trained once."""
    return tmp_path_factory.mktemp("cache")


class RaisesInRun(Attack):
    def run(self, access, victims, prior, budget, generator):
        raise RuntimeError("boom\nsecond line of the error")


def child_environment(workdir: Path, cache: Path) -> dict:
    return dict(
        os.environ,
        INVBENCH_RESULTS=str(workdir / "results"),
        INVBENCH_CACHE=str(cache),
        INVBENCH_DATA=str(workdir / "data"),
        INVBENCH_SITE=str(workdir / "site"),
        TORCH_HOME=str(workdir / "torch"),  # no metric weights, whatever this machine has
        PYTHONUNBUFFERED="1",
    )


@pytest.mark.slow
def test_a_sweep_prints_a_progress_line_a_line_per_failure_and_no_job_dumps(workdir, shared_cache):
    """The user's view (a pipe, as in ``make bench > log``): the cells run in the launcher
    (jobs=1), one of them fails."""
    script = textwrap.dedent(
        f"""
        import sys
        from benchmark.cli import main
        from tests.conftest import registered_image_attacks
        from tests.test_sweep_output import RaisesInRun

        with registered_image_attacks({{"test-raises-in-run": (RaisesInRun, "whitebox", None)}}):
            sys.exit(main(["bench", *{SHOWN!r}, "task=digits",
                           "attack=[gan-random,test-raises-in-run]", "defense=none"]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env=child_environment(workdir, shared_cache),
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    lines = out.splitlines()
    progress = [line for line in lines if line.startswith("progress: ")]
    assert progress and progress[-1].startswith("progress: 2/2 cells done, 1 failed |"), out
    failed = [line for line in lines if line.startswith("[failed]")]
    assert len(failed) == 1 and failed[0].startswith(
        "[failed] smoke/digits test-raises-in-run x none s0: RuntimeError: boom (record: "
    ), out
    assert not any(line.startswith(("[ok]", "[cached]")) for line in lines), out
    assert "[HYDRA]" not in out and not re.search(r"#\d+ : ", out), out
    assert not re.search(r"\w+Warning\b", out) and "Downloading" not in out, out
    for metric, weights in (("fid", FID_WEIGHTS), ("lpips", ALEXNET_WEIGHTS)):
        about = [line for line in lines if f"metric '{metric}'" in line]
        assert len(about) == 1 and about[0].startswith("[unavailable]"), out
        assert weights in about[0] and str(workdir / "torch") in about[0]
    record = json.loads((workdir / "results/smoke/digits/gan-random__none__s0.json").read_text())
    assert record["status"] == "ok" and FID_WEIGHTS in record["metrics"]["fid"]["unavailable"]
    assert not (workdir / "results" / ".sweeps").exists()  # the events folder is removed


@pytest.mark.slow
def test_cells_of_an_online_sweep_never_download_metric_weights(
    workdir, shared_cache, monkeypatch, capsys
):
    """Not offline, but the weights cannot be fetched: the launcher says so once, and no cell
    tries a download (before, each cell of each worker tried and failed silently)."""
    import torch

    import benchmark.downloads

    monkeypatch.setenv("INVBENCH_CACHE", str(shared_cache))
    monkeypatch.setenv("TORCH_HOME", str(workdir / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", None, raising=False)
    downloads = []

    def download(url, *args, **kwargs):
        downloads.append(url)
        raise OSError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    # the launcher's probe finds the weights' hosts unreachable
    monkeypatch.setattr(benchmark.downloads, "online", lambda *args, **kwargs: False)
    sweep = ["bench", *TINY, "paths.offline=false", "task=digits", "defense=none"]
    assert main([*sweep, "attack=[gan-random,gmi]"]) == 0
    out = capsys.readouterr().out
    assert downloads == []
    assert out.count("[unavailable] metric 'fid'") == 1
    assert out.count("[unavailable] metric 'lpips'") == 1
    for attack in ("gan-random", "gmi"):
        path = workdir / f"results/smoke/digits/{attack}__none__s0.json"
        metrics = json.loads(path.read_text())["metrics"]
        assert ALEXNET_WEIGHTS in metrics["lpips"]["unavailable"]
        assert metrics["fid"]["value"] is None


def test_run_and_bench_help_print_the_usage_and_exit_0(capsys):
    done = subprocess.run(
        [sys.executable, "-m", "benchmark.cli", "run", "--help"],
        cwd=PROJECT,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and done.stderr == ""
    usage = done.stdout
    assert usage.startswith("usage: invbench run [OVERRIDES]")
    for part in ("Overrides", "KEY.SUB=VALUE", "Examples:", "--cfg job", "seed=0", "paths.data"):
        assert part in usage
    groups = re.findall(r"^  (task|attack|defense|suite|launcher) ", usage, re.M)
    assert groups == ["task", "attack", "defense", "suite"]  # launcher: bench only
    for group in groups:  # every choice, as a word (a wrapped list never splits a name)
        for choice in group_choices(group):
            assert re.search(rf"(?<![\w-]){re.escape(choice)}(?![\w-])", usage), choice
    assert main(["bench", "attack=gmi", "-h"]) == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: invbench bench") and "launcher  slurm" in usage
    assert "'GROUP=[A,B]'" in usage and "progress=false" in usage
    for choice in ("link-steal-0", "label-smoothing", "smoke"):
        assert re.search(rf"\b{choice}\b", usage)


def test_run_cfg_job_prints_the_composed_config_and_runs_nothing(workdir, capsys):
    assert main(["run", "task=digits", "attack=gmi", "attack.lr=0.05", "--cfg", "job"]) == 0
    out = capsys.readouterr().out
    assert "name: digits" in out and "name: gmi" in out and "lr: 0.05" in out
    assert "hydra:" not in out
    assert main(["run", "task=digits", "--cfg=all"]) == 0
    assert "hydra:" in capsys.readouterr().out
    assert not (workdir / "results").exists()
    assert main(["bench", "task=digits", "--cfg", "job"]) == 2
    assert "invbench run OVERRIDES --cfg job" in capsys.readouterr().err


def test_list_reads_its_index_without_importing_torch(workdir):
    """The index written from the registries (as a first ``invbench list`` writes it) answers
    the next one; the subprocess never imports torch, and every name is listed."""
    rows = registry_rows()
    write_index(index_path(), source_digest(), rows)
    script = (
        "import sys; from benchmark.cli import main; main(['list']); "
        "print('torch imported:', 'torch' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith("torch imported: False")
    assert "indexing" not in done.stdout
    for registry in (TASKS, ATTACKS, DEFENSES, METRICS):
        for name in registry.names():
            assert f"  {name} " in done.stdout


def test_the_index_goes_stale_when_a_method_is_added_or_a_declaration_edited(tmp_path):
    from benchmark.scaffold import Metadata, create_method

    for package in SOURCES:  # a copy of the sources the registrations depend on
        for path in (PROJECT / package).rglob("*.py"):
            copy = tmp_path / path.relative_to(PROJECT)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
    (tmp_path / "benchmark/conf/attack").mkdir(parents=True)
    before = source_digest(tmp_path)
    assert before == source_digest(PROJECT)
    index = tmp_path / "index.json"
    write_index(index, before, {"ATTACKS": []})
    assert read_index(index, before) == {"ATTACKS": []}

    create_method("attack", "fresh-attack", Metadata("T", "A", "V", 2024, "u"), root=tmp_path)
    added = source_digest(tmp_path)
    assert added != before and read_index(index, added) is None
    (tmp_path / "attacks" / "fresh_attack.py").write_text("# edited\n", "utf-8")
    assert source_digest(tmp_path) not in (before, added)
    assert set(PLUGIN_PACKAGES) < set(SOURCES)


def test_list_columns_fit_a_long_name(capsys):
    long_name = "a-very-long-attack-name-that-overflows-a-column"
    citation = Citation("Title", "Someone et al.", "Venue", 2024, "https://example.org")
    with registered_image_attacks({long_name: (RaisesInRun, "scores", citation)}):
        assert main(["list"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("  ")]
    assert any(line.startswith(f"  {long_name}  ") for line in rows)

    def field_starts(row: str) -> list[int]:
        return [match.start() for match in re.finditer(r"(?<=  )\S", row)]

    # each column starts at the same offset on every row, the long name's included
    assert len({field_starts(row)[1] for row in rows}) == 1  # the modalities
    attacks = [row for row in rows if " access=" in row]
    assert len({tuple(field_starts(row)[:5]) for row in attacks}) == 1
    assert format_listing({"X": []}) == "\nX"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def finish(events: Path, label: str, status: str, error: str | None = None) -> None:
    report_cell({"sweep_events": str(events)}, status, label, "not printed", error, "rec.json")


def test_progress_prints_every_few_cells_and_each_failure_when_not_a_terminal(tmp_path, capsys):
    stream = io.StringIO()
    progress = SweepProgress(40, tmp_path / "events", stream=stream, every_seconds=3600)
    progress.events.mkdir()
    for number in range(5):
        finish(progress.events, f"cell {number}", "cached" if number == 0 else "ok")
    finish(progress.events, "cell 5", "failed", "ValueError: " + "x" * 500 + "\nmore")
    progress.poll()
    assert capsys.readouterr().out == ""  # the cells printed nothing themselves
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"[failed] cell 5: ValueError: {'x' * 225}... (record: rec.json)"
    assert re.fullmatch(
        r"progress: 6/40 cells done, 1 failed, 1 cached \| 0:\d\d elapsed, ETA \d+:\d\d",
        lines[1],
    )
    progress.poll()  # nothing new: no line
    finish(progress.events, "cell 6", "ok")
    progress.poll()  # one cell since the last line: not due (every 2 cells of 40)
    assert len(stream.getvalue().splitlines()) == 2
    with progress:
        pass  # the last line on exit
    assert stream.getvalue().splitlines()[-1].startswith("progress: 7/40 cells done, 1 failed")


def test_progress_redraws_one_line_on_a_terminal(tmp_path):
    terminal = FakeTerminal()
    with SweepProgress(2, tmp_path / "events", stream=terminal, poll_seconds=3600) as progress:
        finish(progress.events, "a", "ok")
        progress.poll()
        finish(progress.events, "b", "failed", "RuntimeError: boom")
    shown = terminal.getvalue()
    assert shown.count("\n") == 2  # the failure's line and the last line; the rest redrawn
    assert "\r\x1b[K[failed] b: RuntimeError: boom (record: rec.json)\n" in shown
    last = shown.rsplit("\r\x1b[K", 1)[1]
    assert last.startswith("progress: 2/2 cells done, 1 failed |") and last.endswith("\n")
    assert "\r\x1b[Kprogress: 1/2 cells done, 0 failed |" in shown  # drawn in place before


def test_a_cell_outside_a_sweep_prints_its_line(capsys):
    report_cell({}, "ok", "label", "[ok] label: fine")
    assert capsys.readouterr().out == "[ok] label: fine\n"


def test_library_deprecation_warnings_are_filtered_by_their_exact_message():
    import torch

    from benchmark.quiet import quiet_libraries

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_libraries()
        torch.jit.script(_plus_one)
        warnings.warn("`torch.jit.script` is deprecated elsewhere", FutureWarning)
    messages = [str(w.message) for w in caught]
    assert messages == ["`torch.jit.script` is deprecated elsewhere"]  # only torch's is known


def _plus_one(x):
    return x + 1
