"""The image attacks at the mini suite's budgets on digits and (real) Olivetti, asserted on the
records `invbench bench` writes. About 10 minutes on 2 cores, so it is marked ``acceptance`` and
left out of `make test`; run it with `make test PYTEST_ARGS="-m acceptance"`."""

from __future__ import annotations

import json

import pytest

from benchmark.cli import main
from tests.conftest import SHARED_DATA

pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

GAN_ATTACKS = ["gmi", "kedmi", "plgmi", "lomma-gmi", "lomma-kedmi", "lomma-plgmi", "ppa"]
TASKS = ["digits"] + (["olivetti"] if (SHARED_DATA / "faces" / "sklearn_olivetti").is_dir()
                      else [])


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    root = tmp_path_factory.mktemp("faces")
    env = {"INVBENCH_RESULTS": root / "results", "INVBENCH_CACHE": root / "cache",
           "INVBENCH_DATA": SHARED_DATA, "INVBENCH_SITE": root / "site"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, str(value))
        tasks = f"task={','.join(TASKS)}"
        assert main(["bench", tasks, f"attack=[{','.join(GAN_ATTACKS)},miface,deepinversion]",
                     "defense=none", "progress=false"]) == 0
    out = {}
    for path in (root / "results" / "mini").rglob("*.json"):
        record = json.loads(path.read_text())
        assert record["status"] == "ok", record["error"]
        out[(record["task"], record["attack"], record["defense"])] = record
    return out


def accuracy(record: dict) -> float:
    return record["metrics"]["attack_acc@1"]["value"]


@pytest.mark.parametrize("task", TASKS)
def test_every_gan_attack_beats_miface_and_chance(records, task):
    floor = accuracy(records[(task, "miface", "none")])
    chance = {"digits": 1 / 5, "olivetti": 1 / 20}[task]
    for attack in GAN_ATTACKS:
        value = accuracy(records[(task, attack, "none")])
        assert value >= max(floor, chance) + 0.15, (attack, value, floor, chance)


@pytest.mark.parametrize("task", TASKS)
def test_lomma_raises_gmi(records, task):
    assert accuracy(records[(task, "lomma-gmi", "none")]) > accuracy(records[(task, "gmi", "none")])


def test_fid_is_unavailable_offline_with_its_reason(records):
    fid = records[("digits", "gmi", "none")]["metrics"]["fid"]
    assert fid["value"] is None and "pt_inception" in fid["unavailable"]
