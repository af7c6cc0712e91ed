"""Defenses change what they claim to, and access levels release only what they allow."""

import pytest
import torch
import torch.nn.functional as F

from benchmark.access import NoAccess, Oracle, WhiteBoxAccess, released
from benchmark.errors import QueryBudgetExceeded
from defenses.label_smoothing import LabelSmoothing
from defenses.output_noise import OutputNoise


def test_output_noise_releases_distributions_that_differ_from_the_truth():
    probs = torch.softmax(torch.randn(64, 10, generator=torch.Generator().manual_seed(0)), -1)
    defense = OutputNoise({"scale": 0.05})
    noisy = defense.transform_output(probs, torch.Generator().manual_seed(1))
    assert (noisy >= 0).all() and torch.allclose(noisy.sum(-1), torch.ones(64))
    assert (noisy - probs).abs().mean() > 0.01
    again = defense.transform_output(probs, torch.Generator().manual_seed(1))
    assert torch.equal(noisy, again)


def test_label_smoothing_loss_matches_the_smoothed_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0]])
    labels = torch.tensor([0])
    log_p = F.log_softmax(logits, -1)[0]
    alpha = 0.3
    expected = -((1 - alpha + alpha / 3) * log_p[0] + alpha / 3 * (log_p[1] + log_p[2]))
    assert LabelSmoothing({"alpha": alpha}).training_loss(logits, labels) == pytest.approx(
        expected.item()
    )
    assert LabelSmoothing({"alpha": 0.0}).training_loss(logits, labels) == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )


def test_negative_smoothing_follows_the_papers_schedule():
    """Struppek et al.'s schedule at 20 epochs: plain cross-entropy for epochs 0-9, alpha
    ramped over epochs 10-14 (1/5 .. 5/5 of it), then held."""
    from defenses.negls import NegativeLabelSmoothing

    defense = NegativeLabelSmoothing({"alpha": -0.05, "schedule": [0.5, 0.75]})
    alphas = []
    for epoch in range(20):
        defense.start_epoch(epoch, 20)
        alphas.append(round(defense.alpha, 4))
    assert alphas == [0.0] * 10 + [-0.01, -0.02, -0.03, -0.04] + [-0.05] * 6
    logits, labels = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([0])
    defense.start_epoch(0, 20)
    assert defense.training_loss(logits, labels) == pytest.approx(
        F.cross_entropy(logits, labels).item()
    )
    with pytest.raises(ValueError, match="schedule"):
        NegativeLabelSmoothing({"alpha": -0.05, "schedule": [0.8, 0.5]})


def _model():
    return torch.nn.Linear(4, 3)


def test_scores_oracle_counts_queries_exactly_and_enforces_the_budget():
    model = _model()
    oracle = Oracle(
        released(lambda x: torch.softmax(model(x), -1), lambda p, g: p, torch.Generator()),
        "scores",
        budget=10,
    )
    out = oracle(torch.randn(4, 4))
    assert oracle.queries == 4 and out.shape == (4, 3) and not out.requires_grad
    oracle(torch.randn(6, 4))
    assert oracle.queries == 10
    with pytest.raises(QueryBudgetExceeded, match="query budget is 10"):
        oracle(torch.randn(1, 4))
    assert oracle.queries == 10


def test_black_box_oracle_exposes_no_module_and_no_gradient():
    model = _model()
    oracle = Oracle(
        released(lambda x: torch.softmax(model(x), -1), lambda p, g: p, torch.Generator()),
        "scores",
        budget=None,
    )
    assert not any(isinstance(getattr(oracle, name, None), torch.nn.Module) for name in dir(oracle))
    with pytest.raises(AttributeError):
        oracle.model  # noqa: B018
    x = torch.randn(2, 4, requires_grad=True)
    with pytest.raises(RuntimeError):
        oracle(x).sum().backward()


def test_topk_and_label_access_release_only_what_they_allow():
    probs = torch.tensor([[0.1, 0.5, 0.15, 0.25]])
    for access, expected in (("topk", [[0.0, 0.5, 0.0, 0.25]]), ("label", [[0.0, 1.0, 0.0, 0.0]])):
        oracle = Oracle(lambda x: probs, access, budget=None, topk=2)
        assert torch.equal(oracle(torch.zeros(1, 4)), torch.tensor(expected))


def test_white_box_access_counts_forward_passes():
    model = _model()
    access = WhiteBoxAccess(model, lambda x: torch.softmax(model(x), -1))
    access.model(torch.randn(5, 4))
    access.probabilities(torch.randn(3, 4))
    assert access.queries == 8
    assert not any(p.requires_grad for p in model.parameters())


class _TwoStage(torch.nn.Module):
    """A target with a partial forward, as the image (``features``) and graph (``hidden``)
    targets have."""

    def __init__(self):
        super().__init__()
        self.body, self.head = torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).relu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_white_box_access_counts_partial_forwards_run_outside_a_forward():
    """Reading the target's features directly runs it as a forward does, so it is counted
    (once: the features read inside a forward are that forward's), and the wrapper is gone
    when the access closes."""
    model = _TwoStage()
    access = WhiteBoxAccess(model, lambda x: torch.softmax(model(x), -1))
    access.model(torch.randn(5, 4))
    assert access.queries == 5
    torch.testing.assert_close(
        access.model.features(torch.ones(3, 4)), model.body(torch.ones(3, 4)).relu()
    )
    assert access.queries == 8
    access.close()
    assert "features" not in vars(model)
    model.features(torch.ones(2, 4))
    assert access.queries == 8


def test_white_box_forwards_are_held_to_the_suite_budget_training_included():
    model = _model()
    # 6 forwards spent while the attack's GAN trained: 4 are left of a budget of 10
    access = WhiteBoxAccess(model, lambda x: model(x), forwards_budget=10, spent=6)
    access.model(torch.randn(4, 4))
    assert access.queries == 4
    with pytest.raises(QueryBudgetExceeded, match=r"caused 11 target forwards \(6 while its GANs"):
        access.model(torch.randn(1, 4))
    with pytest.raises(QueryBudgetExceeded, match="budget of 10 forwards"):
        access.queries += 1  # an attack that evaluates the weights itself is charged too
    access.close()
    unbounded = WhiteBoxAccess(model, lambda x: model(x))
    unbounded.model(torch.randn(100, 4))
    assert unbounded.queries == 100


def test_a_no_access_baseline_cannot_query_the_model():
    access = NoAccess()
    with pytest.raises(PermissionError, match="access 'none'"):
        access(torch.zeros(1, 4))
    assert access.queries == 0


def test_a_cell_past_the_suite_forwards_budget_fails_naming_the_budget(workdir, capsys):
    """KEDMI's GAN labels the public images with the target (its training forwards): under a
    budget smaller than that the cell fails before its search, and says which budget to raise."""
    import json

    from benchmark.cli import main
    from tests.conftest import SMOKE

    overrides = [*SMOKE, "task=digits", "attack=kedmi", "+suite.budgets.digits.forwards=20"]
    main(["run", *overrides])
    record = json.loads(next((workdir / "results").rglob("*.json")).read_text())
    assert record["status"] == "failed"
    assert "past the suite's white-box budget of 20 forwards" in record["error"]
    assert "budgets.<task>.forwards" in record["error"]


@pytest.mark.parametrize("suite", ["mini", "paper"])
def test_every_task_with_a_white_box_attack_caps_its_forwards_above_the_largest_plan(suite):
    """A white-box attack's budget is one forwards cap per task, the same for every attack: each
    task of the suite that a white-box attack can run on sets one, and on the face tasks it
    covers the attack that plans the most forwards from the suite's own numbers (PPA's
    candidates, searched for ``steps`` and scored over ``selection_views``; PLG-MI's two
    augmented views per step plus its cGAN's fakes; Sec. 4 of the issue)."""
    from benchmark.registry import ATTACKS, TASKS, load_all
    from benchmark.runner import attack_settings, suite_method_settings
    from tests.conftest import compose

    load_all()
    white_box = {m for e in ATTACKS.entries() if e.access == "whitebox" for m in e.modalities}
    cfg = compose(f"suite={suite}")
    for task, budget in cfg.suite.budgets.items():
        if set(TASKS.get(task).modalities) & white_box:
            assert int(budget.get("forwards") or 0) > 0, (suite, task)
        if "samples_per_identity" not in budget:
            continue
        searched = budget.identities * budget.samples_per_identity
        ppa = compose(f"suite={suite}", "attack=ppa")
        ppa_cfg = attack_settings(
            ppa.attack, dict(budget), {}, None, suite_method_settings(ppa, "ppa")
        )
        planned_ppa = (
            searched
            * ppa_cfg["candidates_per_sample"]
            * (budget.steps + ppa_cfg["selection_views"])
        )
        batch = (
            budget.get("prior_batch_size") or compose("attack=plgmi").attack.target_prior.batch_size
        )
        planned_plgmi = 2 * searched * budget.steps + budget.prior_steps * batch
        assert budget.forwards >= max(planned_ppa, planned_plgmi), (suite, task)
