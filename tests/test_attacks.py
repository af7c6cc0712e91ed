"""Each attack against a baseline it must beat, at the mini suite's budgets."""

import pytest

from benchmark.runner import run_cell
from tests.conftest import compose

pytestmark = pytest.mark.slow


def _run(*overrides):
    record = run_cell(compose(*overrides, "progress=false"))
    assert record["status"] == "ok", record["error"]
    return record


def test_gmi_beats_random_latents_of_the_same_prior_and_chance(workdir):
    gmi = _run("task=digits", "attack=gmi", "defense=none")
    floor = _run("task=digits", "attack=gan-random", "defense=none")
    assert floor["cost"]["queries"] == 0  # the baseline never touches the target
    # Same cached GAN prior for both (trained once), same number of samples.
    assert gmi["provenance"]["prior"]["sha256"] == floor["provenance"]["prior"]["sha256"]
    accuracy = gmi["metrics"]["attack_acc@1"]["value"]
    assert accuracy > floor["metrics"]["attack_acc@1"]["value"] + 0.1
    assert accuracy > 1 / 5 + 0.1  # five private classes
    assert gmi["metrics"]["knn_dist"]["value"] < floor["metrics"]["knn_dist"]["value"]
