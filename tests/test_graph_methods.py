"""Graph attacks and defenses: closed-form gradients, projections, the defenses' exact
outputs, and (with ../shared/data) the published numbers on Cora."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attacks._relaxed_adjacency import DenseGCN, RelaxedAdjacency, feature_smoothness
from benchmark.access import WhiteBoxAccess
from benchmark.cli import main
from defenses._edge_dp import edges_of, pair_bits
from defenses.dp_sgd import DPSGD
from defenses.edge_rand import EdgeRand
from defenses.label_only_release import LabelOnlyRelease
from defenses.lap_graph import LapGraph
from defenses.rounding import Rounding
from defenses.topk_release import TopKRelease
from tasks.graph_models import GCN, GraphSAGE, nonzero_dropout, training_features
from tests.conftest import SHARED_DATA, SMOKE, needs_shared_data


def test_closed_form_adjacency_gradient_matches_autograd():
    torch.manual_seed(0)
    n = 30
    x, y = (torch.rand(n, 20) < 0.3).float(), torch.randint(0, 4, (n,))
    model = GCN(20, 8, 4, 0.5).eval()
    s = torch.rand(n, n)
    s = (s + s.T) / 2
    s.fill_diagonal_(0)
    leaf = s.clone().requires_grad_(True)
    gram = x @ x.T
    degree = leaf.sum(1)
    rho = (degree + 1e-3).rsqrt()
    smooth = (degree * rho**2 * gram.diagonal()).sum() - rho @ ((leaf * gram) @ rho)
    hidden_weight = torch.randn(n, 8)
    loss = (
        F.cross_entropy(model(x, leaf), y)
        + 0.3 * smooth
        + (model.hidden(x, leaf) * hidden_weight).sum()
    )
    (expected,) = torch.autograd.grad(loss, leaf)
    expected = expected + expected.T
    expected.fill_diagonal_(0)

    gcn = DenseGCN(WhiteBoxAccess(model, lambda q: q), x)
    state = gcn.forward(s)
    value, rho_mine, d_degree = feature_smoothness(s, gram, gram.diagonal())
    assert value == pytest.approx(float(smooth.detach()), rel=1e-5)
    d_logits = (torch.softmax(state["logits"], 1) - F.one_hot(y, 4).float()) / n
    left, right = gcn.low_rank_gradient(state, d_logits, hidden_weight, 0.3 * d_degree)
    mine = left @ right.T
    mine = mine + mine.T - 2 * 0.3 * gram * rho_mine[:, None] * rho_mine[None, :]
    mine.fill_diagonal_(0)
    assert torch.allclose(mine, expected, atol=1e-6)


def test_sparse_training_features_give_the_dense_results():
    """Targets train on sparse bag-of-words features (X W is the GCN's cost); the model's
    outputs and the dropout mask must be those of the dense features."""
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(60, 40, generator=generator) < 0.05).float()
    edges = torch.randint(60, (2, 200), generator=generator)
    gcn, sage = GCN(40, 8, 3, 0.5), GraphSAGE(40, 8, 3, 0.5)
    sparse = training_features(gcn, x)
    assert sparse.is_sparse and not training_features(sage, x).is_sparse  # SAGE needs rows
    gcn.eval()
    assert torch.allclose(gcn(sparse, edges), gcn(x, edges), atol=1e-6)
    torch.manual_seed(1)
    dense_dropped = nonzero_dropout(x, 0.5, True)
    torch.manual_seed(1)
    sparse_dropped = nonzero_dropout(sparse, 0.5, True).to_dense()
    assert torch.equal(dense_dropped, sparse_dropped)
    assert 0 < (dense_dropped != 0).sum() < (x != 0).sum()  # about half the nonzeros kept
    assert training_features(gcn, torch.ones(5, 4)).is_sparse is False  # dense data stays dense


def test_projection_meets_the_edge_budget_and_keeps_the_order():
    torch.manual_seed(1)
    adjacency = RelaxedAdjacency(50)
    values = torch.rand(50, 50) * 1.5 - 0.2
    adjacency.matrix = (values + values.T) / 2
    adjacency.matrix.fill_diagonal_(0)
    before = adjacency.matrix.clone()
    adjacency.project(budget=40.0)
    m = adjacency.matrix
    assert torch.equal(m, m.T) and float(m.min()) >= 0 and float(m.max()) <= 1
    assert float(m.sum()) / 2 == pytest.approx(40.0, abs=1e-3)
    # a <- clip(a - mu, 0, 1) for one mu: every pair weight moved by the same shift
    clipped = before.clamp(0, 1)
    inside = (m > 0) & (m < 1)
    mu = float((clipped - m)[inside][0])
    expected = (clipped - mu).clamp(0, 1)
    expected.fill_diagonal_(0)
    assert torch.allclose(m, expected, atol=1e-5)
    adjacency.project(budget=1e6)  # under budget: unchanged
    assert torch.equal(adjacency.matrix, m)


def test_output_defenses_by_hand():
    probs = torch.tensor([[0.52, 0.31, 0.12, 0.05], [0.04, 0.06, 0.6, 0.3]])
    g = torch.Generator()
    assert torch.allclose(
        Rounding({"decimals": 1}).transform_output(probs, g),
        torch.tensor([[0.5, 0.3, 0.1, 0.0], [0.0, 0.1, 0.6, 0.3]]),
    )
    logp = Rounding({"decimals": 0, "space": "logprobs"}).transform_output(probs, g)
    expected = torch.softmax(torch.round(torch.log(probs)), 1)
    assert torch.allclose(logp, expected)
    # space auto: log-probabilities for a text task's release, probabilities elsewhere
    for modality, space in (("text", "logprobs"), ("graph", "probs"), ("image", "probs")):
        auto = Rounding({"decimals": 0, "space": "auto"})
        auto.modality = modality
        assert torch.equal(
            auto.transform_output(probs, g),
            Rounding({"decimals": 0, "space": space}).transform_output(probs, g),
        )
    top2 = TopKRelease({"k": 2}).transform_output(probs, g)
    assert torch.allclose(
        top2, torch.tensor([[0.52 / 0.83, 0.31 / 0.83, 0, 0], [0, 0, 0.6 / 0.9, 0.3 / 0.9]])
    )
    assert torch.equal(
        LabelOnlyRelease().transform_output(probs, g),
        torch.tensor([[1.0, 0, 0, 0], [0, 0, 1.0, 0]]),
    )


def test_pair_layout_round_trips():
    edges = np.array([[0, 1], [0, 4], [2, 3], [3, 4]])
    bits = pair_bits(edges, 5)
    assert bits.sum() == 4 and np.array_equal(edges_of(np.flatnonzero(bits), 5), edges)


def test_edge_dp_mechanisms_follow_their_epsilon():
    rng = np.random.default_rng(0)
    n = 200
    pairs = n * (n - 1) // 2
    edges = edges_of(np.sort(rng.choice(pairs, 400, replace=False)), n)
    # EdgeRand: a fair coin on a share s = 2 / (e^eps + 1) of the pairs
    dense = EdgeRand({"epsilon": 1.0}).perturb_edges(edges, n, np.random.default_rng(1))
    s = 2 / (np.e + 1)
    assert len(dense) == pytest.approx(400 * (1 - s) + pairs * s / 2, rel=0.03)
    faithful = EdgeRand({"epsilon": 20.0}).perturb_edges(edges, n, np.random.default_rng(1))
    assert np.array_equal(faithful, edges)
    # LapGraph keeps the (noisy) edge count; at large epsilon it returns the graph itself
    noisy = LapGraph({"epsilon": 1.0, "count_share": 0.01}).perturb_edges(
        edges, n, np.random.default_rng(2)
    )
    assert (
        abs(len(noisy) - 400) < 2000 and len(set(map(tuple, noisy)) & set(map(tuple, edges))) < 400
    )
    exact = LapGraph({"epsilon": 1e4, "count_share": 0.5}).perturb_edges(
        edges, n, np.random.default_rng(2)
    )
    assert np.array_equal(exact, edges)


def test_dp_sgd_clips_each_example_and_accounts_epsilon():
    torch.manual_seed(0)
    defense = DPSGD(
        {"sample_rate": 0.5, "max_grad_norm": 1.0, "noise_multiplier": 0.0, "delta": 1e-5}
    )
    params = [torch.zeros(2)]
    grads = [(torch.tensor([3.0, 4.0]),), (torch.tensor([0.3, 0.4]),)]
    out = defense.private_gradient(grads, params, num_examples=4)
    # clipped to norm 1: (0.6, 0.8) + (0.3, 0.4), divided by q n = 2
    assert torch.allclose(out[0], torch.tensor([0.45, 0.6]))
    noisy = DPSGD(
        {"sample_rate": 0.25, "max_grad_norm": 1.0, "noise_multiplier": 2.0, "delta": 1e-5}
    )
    spent = noisy.privacy_spent(200, 140)
    assert 9 < spent["epsilon"] < 12  # RDP accountant: sigma 2, q 0.25, 200 steps
    assert noisy.privacy_spent(50, 140)["epsilon"] < spent["epsilon"]


@pytest.mark.slow
def test_every_graph_attack_against_every_defense_runs(workdir, capsys):
    assert main(["bench", *SMOKE, "task=sbm-citation"]) == 0
    out = capsys.readouterr().out
    assert "[failed]" not in out, out
    records = [json.loads(p.read_text()) for p in (workdir / "results").rglob("*.json")]
    names = {(r["attack"], r["defense"]) for r in records}
    for attack in (
        "graphmi",
        "mc-gra",
        "link-steal-0",
        "link-steal-1",
        "link-steal-2",
        "feature-similarity",
    ):
        assert (attack, "none") in names and (attack, "edge-rand") in names
    assert ("graphmi", "rounding") not in names  # white-box x output defense: n/a
    dp = next(r for r in records if r["defense"] == "dp-sgd")
    assert dp["provenance"]["target"]["privacy"]["epsilon"] > 0
    assert all(r["attacker_knowledge"]["num_edges"] > 0 for r in records)


GRAPH_DEFENSES = (
    "edge-rand",
    "lap-graph",
    "dp-sgd",
    "rounding",
    "topk-release",
    "label-only-release",
    "output-noise",
    "label-smoothing",
)


@pytest.mark.slow
@needs_shared_data
def test_published_numbers_on_cora(workdir, monkeypatch, capsys):
    monkeypatch.setenv("INVBENCH_DATA", str(SHARED_DATA))
    assert (
        main(
            [
                "bench",
                "task=cora",
                "attack=[graphmi,mc-gra,link-steal-1,link-steal-2,feature-similarity]",
                "defense=none",
                "progress=false",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "bench",
                "task=cora",
                "attack=link-steal-0",
                f"defense=[none,{','.join(GRAPH_DEFENSES)}]",
                "progress=false",
            ]
        )
        == 0
    )
    root = workdir / "results" / "mini" / "cora"

    def record(attack: str, defense: str) -> dict:
        return json.loads((root / f"{attack}__{defense}__s0.json").read_text())

    def metric(attack: str, defense: str, name: str = "auc") -> float:
        return record(attack, defense)["metrics"][name]["value"]

    floor = metric("feature-similarity", "none")  # the features alone: 0.80 on Cora
    assert metric("graphmi", "none", "auc_all_pairs") >= 0.84  # GraphMI: 0.855-0.90
    assert metric("graphmi", "none") > floor
    assert metric("mc-gra", "none") > metric("graphmi", "none")
    assert metric("link-steal-1", "none") > floor
    # attack-2 (difference of the reference MLP's and the target's posterior distances):
    # measured 0.67 on Cora, below attack-0; it must still beat chance.
    assert metric("link-steal-2", "none") > 0.6
    assert metric("link-steal-0", "none") >= 0.90  # He et al.: 0.922
    # Every defense lowers the attack on the same released outputs or retrained target ...
    for defense in GRAPH_DEFENSES:
        if defense != "label-smoothing":  # Struppek et al.: smoothing need not protect
            assert metric("link-steal-0", defense) < metric("link-steal-0", "none"), defense
    # ... and EdgeRand at epsilon 1 brings it near chance while utility collapses.
    assert 0.4 <= metric("link-steal-0", "edge-rand") <= 0.6
    clean = record("link-steal-0", "none")["utility"]["test_accuracy"]["value"]
    noised = record("link-steal-0", "edge-rand")["utility"]["test_accuracy"]["value"]
    assert clean > 0.75 and noised < 0.5
    assert record("graphmi", "none")["attacker_knowledge"]["num_edges"] > 3000
    privacy = record("link-steal-0", "dp-sgd")["provenance"]["target"]["privacy"]
    assert 9 < privacy["epsilon"] < 12
    assert privacy["level"] == "node-loss-term"  # not an edge-level epsilon


@pytest.mark.slow
def test_sage_and_gat_targets_and_a_random_split(workdir, capsys):
    for model, name in (("sage", "GraphSAGE"), ("gat", "GAT")):
        assert (
            main(
                [
                    "run",
                    "task=sbm-citation",
                    "attack=link-steal-0",
                    "defense=none",
                    f"task.target.model={model}",
                    "++task.target.epochs=30",
                    "rerun=true",
                    "progress=false",
                    "show_record=true",
                ]
            )
            == 0
        )
        out = capsys.readouterr().out
        record = json.loads(out[out.index("{") :])
        assert record["provenance"]["target"]["architecture"] == name
        assert record["utility"]["test_accuracy"]["value"] > 0.5
        assert record["metrics"]["auc"]["value"] > 0.6
    # White-box GraphMI optimises through a GCN's propagation: a clear failure elsewhere.
    assert (
        main(
            [
                "run",
                "task=sbm-citation",
                "attack=graphmi",
                "defense=none",
                *SMOKE,
                "task.target.model=sage",
            ]
        )
        == 1
    )
    out = capsys.readouterr().out
    assert "[failed]" in out and "task.target.model=gcn" in out
