"""Shared fixtures. Tests never download: INVBENCH_OFFLINE is set for the whole session."""

from __future__ import annotations

import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path

import pytest

os.environ["INVBENCH_OFFLINE"] = "1"
# Cells run in the test process (monkeypatched environments, counted trainings); the parallel
# path has its own test that sets jobs=2.
os.environ["INVBENCH_JOBS"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
warnings.filterwarnings("ignore", category=FutureWarning)

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"

# Overrides that shrink every training and budget to seconds; behaviour is unchanged.
SMOKE = [
    "suite=smoke",
    "++task.target.epochs=2",
    "++task.evaluator.epochs=2",
    "++task.sizes.train=300",
    "++task.sizes.test=30",
    "++task.sizes.private=10",
    "++task.sizes.public=60",
    "++attack.prior.steps=3",
    "progress=false",
]


@contextmanager
def registered_image_attacks(attacks: dict):
    """Test attacks registered for a ``with`` block, each with its YAML: ``attacks`` maps a
    name to (class, access level, citation). Both are removed afterwards."""
    from benchmark.registry import ATTACKS, register_attack

    conf = PROJECT / "benchmark" / "conf" / "attack"
    for name, (cls, access, citation) in attacks.items():
        register_attack(name, modalities=("image",), access=access, citation=citation)(cls)
        (conf / f"{name}.yaml").write_text(f"name: {name}\n")
    try:
        yield list(attacks)
    finally:
        for name in attacks:
            ATTACKS._entries.pop(name, None)
            (conf / f"{name}.yaml").unlink(missing_ok=True)


needs_shared_data = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason=f"real data folder {SHARED_DATA} is absent (fresh clone)"
)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """Fresh results/ and cache/ for one test, through the environment the CLI reads."""
    monkeypatch.setenv("INVBENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("INVBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("INVBENCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("INVBENCH_SITE", str(tmp_path / "site"))
    return tmp_path


def compose(*overrides: str):
    from benchmark.cli import compose_config

    return compose_config(list(overrides))


def sweep(root: Path, *overrides: str, cache: Path | None = None) -> list[dict]:
    """``invbench bench`` with ``overrides`` into ``root`` (results, site, and the artifact cache
    unless ``cache`` is given; data from ../shared/data); its records, each asserted ok."""
    from benchmark.cli import main

    env = {
        "INVBENCH_RESULTS": root / "results",
        "INVBENCH_CACHE": cache or root / "cache",
        "INVBENCH_DATA": SHARED_DATA,
        "INVBENCH_SITE": root / "site",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, str(value))
        assert main(["bench", *overrides, "progress=false"]) == 0
    records = [json.loads(path.read_text()) for path in sorted((root / "results").rglob("*.json"))]
    for record in records:
        assert record["status"] == "ok", record["error"]
    return records
