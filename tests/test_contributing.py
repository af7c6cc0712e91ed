"""The pull-request path: `invbench new` scaffolds a method, `invbench check` passes good
methods and fails each kind of bad one with the reason, and a scaffolded attack filled with one
line passes the check and appears on the leaderboard after `make bench` (in a copy of the repo).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from benchmark.cli import main
from benchmark.methods import Attack
from benchmark.registry import Citation
from tests.conftest import PROJECT, SMOKE, registered_image_attacks

# The test's shrunken trainings (conftest.SMOKE); `invbench check` sets the suite itself.
CHECK_OVERRIDES = [o for o in SMOKE if not o.startswith(("suite=", "progress="))]
CITATION = Citation("A test method", "Tester et al.", "Tests", 2026, "https://example.org/t")


def _check_output(capsys, *args: str) -> tuple[int, str]:
    code = main(["check", *args, *CHECK_OVERRIDES])
    return code, capsys.readouterr().out


@pytest.mark.slow
def test_check_passes_registered_methods_on_every_compatible_task(workdir, capsys):
    code, out = _check_output(capsys, "attack=miface", "defense=rounding")
    assert code == 0, out
    assert out.count("  PASS") == 2 and "FAIL" not in out
    # miface is an image attack: digits only here (olivetti's data is absent in workdir);
    # rounding applies to every modality that releases probabilities, each under its reference
    # attack (not to minilm-embeddings)
    assert "digits         miface             none" in out
    for line in (
        "digits         gan-random         rounding",
        "sbm-citation   link-steal-0       rounding",
        "records        prompt-search      rounding",
    ):
        assert line in out
    assert "olivetti       skipped: task 'olivetti' needs real data" in out


class _TouchesModel(Attack):
    def run(self, access, victims, prior, budget, generator, **artifacts):
        return access.model(torch.zeros(1, *victims.image_shape))


class _Unseeded(Attack):
    def run(self, access, victims, prior, budget, generator, **artifacts):
        clock = torch.Generator().manual_seed(time.time_ns())
        return torch.rand(
            len(victims.classes), victims.per_class, *victims.image_shape, generator=clock
        )


class _NaN(Attack):
    def run(self, access, victims, prior, budget, generator, **artifacts):
        return torch.full(
            (len(victims.classes), victims.per_class, *victims.image_shape), float("nan")
        )


class _NoLink(Attack):
    def run(self, access, victims, prior, budget, generator, **artifacts):
        return torch.rand(
            len(victims.classes), victims.per_class, *victims.image_shape, generator=generator
        )


BAD = {
    "test-touches-model": (_TouchesModel, "scores", CITATION),
    "test-unseeded": (_Unseeded, "whitebox", CITATION),
    "test-nan-output": (_NaN, "whitebox", CITATION),
    "test-no-link": (_NoLink, "whitebox", Citation("T", "A", "V", 2026, "")),
}


@pytest.fixture
def bad_attacks():
    with registered_image_attacks(BAD) as names:
        yield names


def test_check_fails_each_kind_of_bad_method_naming_the_reason(workdir, capsys, bad_attacks):
    code, out = _check_output(capsys, f"attack={','.join(bad_attacks)}", "task=digits")
    assert code == 1
    tables = {
        name: out.split(f"invbench check attack={name}")[1].split("invbench check")[0]
        for name in bad_attacks
    }
    assert "access: AttributeError" in tables["test-touches-model"]
    assert "'Oracle' object has no attribute 'model'" in tables["test-touches-model"]
    assert (
        "deterministic: two runs with the same seed gave different reconstructions"
        in tables["test-unseeded"]
    )
    assert "output: ReconstructionError: reconstructions contain NaN" in tables["test-nan-output"]
    assert "registry and schema: FAIL" in tables["test-no-link"]
    assert "citation url '' is not an http(s) link" in tables["test-no-link"]
    for name in bad_attacks:
        assert "\n  FAIL\n" in tables[name], tables[name]
    assert "0 of 4 methods pass" in out


def test_new_refuses_bad_and_taken_names(capsys):
    assert main(["new", "attack", "My_Attack"]) == 2
    assert "lower-case letters" in capsys.readouterr().err
    assert main(["new", "attack", "gmi"]) == 2
    assert "already registered" in capsys.readouterr().err
    assert main(["new", "defense", "my-defense", "--kind", "sideways"]) == 2
    assert "--kind must be one of train, output" in capsys.readouterr().err


def _copy_of_the_repository(tmp_path):
    """The working tree without its environment, caches and results (the venv is shared)."""
    copy = tmp_path / "repo"
    shutil.copytree(
        PROJECT,
        copy,
        ignore=shutil.ignore_patterns(
            ".venv",
            ".git",
            ".invbench",
            "results",
            "site",
            "__pycache__",
            "*.egg-info",
            ".pytest_cache",
        ),
    )
    return copy


@pytest.mark.slow
def _sources(root) -> dict[str, bytes]:
    """Every source and config file under ``root`` (what a pull request could touch).

    Run outputs the repository ignores (results, Hydra's sweep logs under ``.invbench/``) are
    not part of a pull request.
    """
    ignored = {"results", ".invbench", "__pycache__", ".pytest_cache"}
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file()
        and path.suffix in (".py", ".yaml", ".toml", ".md", ".html", ".j2")
        and not ignored.intersection(path.parts)
    }


def test_a_new_attack_with_one_line_passes_check_and_reaches_the_leaderboard(tmp_path):
    copy = _copy_of_the_repository(tmp_path)
    before = _sources(copy)
    venv = PROJECT / ".venv"
    env = dict(
        os.environ,
        PYTHONPATH=str(copy),
        INVBENCH_RESULTS=str(copy / "results"),
        INVBENCH_CACHE=str(tmp_path / "cache"),
        INVBENCH_SITE=str(tmp_path / "site"),
        INVBENCH_DATA=str(tmp_path / "data"),
    )

    def invbench(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "benchmark.cli", *args],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    made = invbench(
        "new",
        "attack",
        "noise-floor",
        "--modality",
        "image",
        "--access",
        "whitebox",
        "--title",
        "Uniform noise as reconstructions",
        "--authors",
        "Tester et al.",
        "--venue",
        "Tests",
        "--year",
        "2026",
        "--url",
        "https://example.org/noise-floor",
    )
    assert made.returncode == 0, made.stderr
    module = copy / "attacks" / "noise_floor.py"
    assert (copy / "benchmark" / "conf" / "attack" / "noise-floor.yaml").is_file()

    # unfilled, the check fails on the output and says what was expected
    unfilled = invbench("check", "attack=noise-floor", "task=digits", *CHECK_OVERRIDES)
    assert unfilled.returncode == 1 and "expected a tensor of shape" in unfilled.stdout

    source = module.read_text()
    marked = "        reconstructions = None  # <- your attack"
    assert source.count(marked) == 1
    module.write_text(
        source.replace(
            "reconstructions = None",
            "reconstructions = torch.rand(len(victims.classes), "
            "victims.per_class, *victims.image_shape, generator=generator)",
        )
    )

    checked = invbench("check", "attack=noise-floor", *CHECK_OVERRIDES)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "digits         noise-floor        none" in checked.stdout
    assert checked.stdout.rstrip().endswith("PASS")

    # The shared venv is up to date: a stamp newer than the copy's pyproject.toml keeps make
    # from reinstalling (which would point the venv's editable install at the copy).
    stamp = tmp_path / "installed"
    stamp.touch()
    bench = subprocess.run(
        [
            "make",
            "bench",
            f"VENV={venv}",
            f"STAMP={stamp}",
            "ARGS=attack=noise-floor defense=none suite=smoke progress=false jobs=1 "
            + " ".join(CHECK_OVERRIDES),
        ],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert bench.returncode == 0, bench.stdout[-3000:] + bench.stderr[-3000:]
    assert "[ok] smoke/digits noise-floor x none s0" in bench.stdout
    html = (tmp_path / "site" / "index.html").read_text()
    assert 'id="attack-noise-floor"' in html and "https://example.org/noise-floor" in html
    assert "Uniform noise as reconstructions" in html
    assert "pip install" not in bench.stdout

    # the whole contribution: one new module and one new YAML, no other file touched
    after = _sources(copy)
    assert set(after) - set(before) == {
        "attacks/noise_floor.py",
        "benchmark/conf/attack/noise-floor.yaml",
    }
    assert [name for name in before if after.get(name) != before[name]] == []


def test_changed_files_map_to_the_methods_they_define():
    from benchmark.check import methods_for_paths

    assert methods_for_paths(
        [
            "attacks/gmi.py",
            "README.md",
            "benchmark/conf/defense/mid.yaml",
            "defenses/label_smoothing.py",
            "attacks/gan_prior.py",
        ]
    ) == [("attack", "gmi"), ("defense", "mid"), ("defense", "label-smoothing")]
    assert methods_for_paths(["benchmark/conf/attack/_gan_prior.yaml"]) == []
