"""The black-box issue's attacks: MIRROR-b, RLB-MI and C2FMI read released scores, BREP-MI and
LOKT labels only.

- Every attack stays within the query budget, and what the released model counted is exactly
  what it was shown (a stand-in target, one call per attack).
- On digits, undefended: every one of them beats random latents of the same prior (gan-random:
  same prior, same number of reconstructions, no search) on attack_acc@1.
- Rounding and top-k release lower the score-based attacks' accuracy.

The last two are measured on digits at 5 identities x 24 reconstructions (seed 0) with the
mini suite's queries per reconstruction (mini: 6,000 queries for 30 reconstructions; here
24,000 for 120): at the mini's 30 one reconstruction is 0.033 of accuracy, and the effect of a
defense is of that order. topk-release runs at k = 1 (its default k = 3 keeps three of digits'
five classes, most of the signal; the closing note gives both).
"""

from __future__ import annotations

import pytest
import torch

from attacks.gan_prior import GANPrior
from benchmark.access import Oracle, released
from benchmark.registry import ATTACKS, load_all
from tasks.images import ImageVictims
from tests.conftest import compose, sweep

SCORE_BASED = ["mirror-b", "rlbmi", "c2fmi"]
LABEL_ONLY = ["brepmi", "lokt"]
BLACK_BOX = SCORE_BASED + LABEL_ONLY
MEASURED = ["suite.budgets.digits.samples_per_identity=24", "suite.budgets.digits.queries=24000"]


def _attack(name: str):
    load_all()
    entry = ATTACKS.get(name)
    attack = entry.obj(compose(f"attack={name}").attack)
    attack.progress = False
    return attack, entry.access


@pytest.mark.parametrize("name", BLACK_BOX)
def test_black_box_attack_stays_within_its_budget_and_every_image_is_counted(name):
    torch.manual_seed(0)
    target = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 3))
    shown: list[int] = []

    def probabilities(images: torch.Tensor) -> torch.Tensor:
        shown.append(len(images))
        return torch.softmax(target(images), dim=-1)

    attack, access = _attack(name)
    budget = 600
    oracle = Oracle(released(probabilities, lambda p, g: p, torch.Generator()), access, budget)
    victims = ImageVictims(
        classes=torch.tensor([0, 2]), per_class=2, image_shape=(1, 16, 16), num_classes=3
    )
    prior = GANPrior((1, 16, 16), z_dim=8, width=4).eval()
    recon = attack.run(
        oracle, victims, prior, {"steps": 2, "queries": budget}, torch.Generator().manual_seed(0)
    )
    assert recon.shape == (2, 2, 1, 16, 16) and torch.isfinite(recon).all()
    assert oracle.queries == sum(shown) <= budget
    assert oracle.queries >= budget // 4, "the attack hardly used its budget"


def _bench(root, *overrides: str) -> dict:
    return {
        (r["attack"], r["defense"]): r
        for r in sweep(root, "task=digits", *MEASURED, *overrides, "jobs=2")
    }


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("black_box")
    _bench(root, f"attack=[{','.join([*BLACK_BOX, 'gan-random'])}]", "defense=none")
    _bench(root, f"attack=[{','.join(SCORE_BASED)}]", "defense=rounding")
    return _bench(root, f"attack=[{','.join(SCORE_BASED)}]", "defense=topk-release", "defense.k=1")


def accuracy(record: dict) -> float:
    return record["metrics"]["attack_acc@1"]["value"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BLACK_BOX)
def test_black_box_attack_beats_random_latents_of_the_same_prior(digits, name):
    floor = accuracy(digits[("gan-random", "none")])
    record = digits[(name, "none")]
    assert accuracy(record) >= floor + 0.15, (accuracy(record), floor)
    assert 0 < record["cost"]["queries"] <= 24000
    assert record["access"] == ("scores" if name in SCORE_BASED else "label")


@pytest.mark.slow
@pytest.mark.parametrize("defense", ["rounding", "topk-release"])
def test_output_defense_lowers_the_score_based_attacks(digits, defense):
    """Top-1 release lowers each attack by 0.2-0.3. Rounding to one decimal lowers what the
    three reconstruct together, but per attack its effect is of the order of one
    reconstruction in 120 and not the same on every CPU: C2FMI 0.958 -> 0.942 on one host,
    0.825 -> 0.833 on another (the same code; float differences change its search), so only
    the three attacks' total is asserted for it."""
    undefended = {name: accuracy(digits[(name, "none")]) for name in SCORE_BASED}
    defended = {name: accuracy(digits[(name, defense)]) for name in SCORE_BASED}
    assert sum(defended.values()) < sum(undefended.values()), (defended, undefended)
    if defense == "topk-release":
        for name in SCORE_BASED:
            assert defended[name] < undefended[name], (name, defended, undefended)
