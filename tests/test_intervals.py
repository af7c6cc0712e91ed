"""Every cell's 95% interval: the bootstrap over the units a record keeps (one seed) and the
two-level bootstrap over seeds and units, against hand-computed values; the tasks' per-unit
scores average to the metric they report."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from leaderboard.intervals import bootstrap_interval, resampled_statistic
from metrics.edge_ranking import edge_auc
from metrics.units import unit_auc, unit_mean


def _mean_units(values) -> dict:
    return unit_mean(values, "identities").units


def test_one_seed_bootstrap_of_a_mean_matches_the_normal_interval():
    # 400 identities, half recognised: mean 0.5, standard error 0.5 / sqrt(400) = 0.025, so
    # the percentile interval is close to 0.5 -+ 1.96 * 0.025 = [0.451, 0.549]
    units = _mean_units([0.0, 1.0] * 200)
    low, high = bootstrap_interval([units], resamples=4000)
    assert low == pytest.approx(0.451, abs=0.01) and high == pytest.approx(0.549, abs=0.01)
    # units that all agree leave nothing to resample: the interval is the value
    assert bootstrap_interval([_mean_units([0.6] * 5)]) == pytest.approx((0.6, 0.6))
    # the same report twice: the same interval (the generator is seeded)
    assert bootstrap_interval([units]) == bootstrap_interval([units])


def test_two_level_bootstrap_carries_the_variation_between_seeds():
    # every unit of seed 0 scores 0.2, of seed 1 0.8: resampling units alone would give the
    # point 0.5, but a resample draws the two seeds with replacement: {0,0} 0.2 (p 1/4),
    # {0,1} 0.5 (1/2), {1,1} 0.8 (1/4); the 2.5th and 97.5th percentiles are 0.2 and 0.8
    seeds = [_mean_units([0.2] * 6), _mean_units([0.8] * 6)]
    assert bootstrap_interval(seeds, resamples=2000) == pytest.approx((0.2, 0.8))
    # seeds that agree: the units' variation remains, narrower than one seed's (twice the units)
    one = _mean_units([0.0, 1.0] * 50)
    low1, high1 = bootstrap_interval([one], resamples=4000)
    low2, high2 = bootstrap_interval([one, one], resamples=4000)
    assert low1 < 0.5 < high1 and high2 - low2 < high1 - low1


def test_edge_auc_resamples_edges_and_non_edges_apart():
    rng = np.random.default_rng(0)
    positives, negatives = rng.normal(1.0, 1.0, 300), rng.normal(0.0, 1.0, 300)
    units = unit_auc(positives, negatives, edge_auc(positives, negatives)).units
    # an identity resample ranks exactly like edge_auc
    draws = resampled_statistic(units, 200, np.random.default_rng(1))
    assert draws.mean() == pytest.approx(edge_auc(positives, negatives), abs=0.01)
    low, high = bootstrap_interval([units])
    value = edge_auc(positives, negatives)  # about Phi(1 / sqrt 2) = 0.76
    assert low < value < high and 0.03 < high - low < 0.12
    # perfectly separated: every resample has AUC 1
    separated = unit_auc([2.0, 3.0, 4.0], [0.0, 1.0], 1.0).units
    assert bootstrap_interval([separated]) == (1.0, 1.0)


def test_image_scores_keep_per_identity_units_that_average_to_the_metric():
    from metrics.attack_accuracy import attack_accuracy, attack_hits
    from metrics.knn_distance import knn_feature_distance, knn_feature_distances

    # 2 identities x 3 reconstructions; identity 0: 2 of 3 recognised, identity 1: 1 of 3
    logits = torch.tensor([[5.0, 0], [5, 0], [0, 5], [0, 5], [5, 0], [5, 0]])
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    per_identity = attack_hits(logits, labels, 1).view(2, 3).mean(1)
    assert per_identity.tolist() == pytest.approx([2 / 3, 1 / 3])
    assert unit_mean(per_identity, "identities").value == pytest.approx(
        attack_accuracy(logits, labels, 1)
    )
    # knn distances stay in the reconstructions' order (labels interleaved on purpose)
    recon = torch.tensor([[0.0], [10.0], [1.0]])
    recon_labels = torch.tensor([0, 1, 0])
    private = torch.tensor([[0.0], [10.0], [12.0]])
    private_labels = torch.tensor([0, 1, 1])
    distances = knn_feature_distances(recon, recon_labels, private, private_labels)
    assert distances.tolist() == [0.0, 0.0, 1.0]
    assert distances.mean().item() == pytest.approx(
        knn_feature_distance(recon, recon_labels, private, private_labels)
    )


def test_text_scores_keep_per_prompt_units_that_average_to_the_metric():
    from tasks.text import prompt_scores

    secrets = ["Ada Lovelace email:", "Alan Turing email:", "Grace Hopper email:"]
    recon = ["Ada Lovelace email:", "Alan Smith email", "nobody"]
    fields = [{"first": "Ada", "last": "Lovelace"}, {"first": "Alan", "last": "Turing"}]
    fields.append({"first": "Grace", "last": "Hopper"})
    scores = prompt_scores(recon, secrets, fields)
    assert scores["exact_match"].units["values"] == [1.0, 0.0, 0.0]
    assert scores["fields_recovered"].value == pytest.approx(3 / 6)
    assert scores["fields_recovered"].units["values"] == [1.0, 0.5, 0.0]
    for name in ("bleu", "token_f1", "exact_match", "fields_recovered"):
        units = scores[name].units
        assert units["unit"] == "prompts" and len(units["values"]) == 3
        assert np.mean(units["values"]) == pytest.approx(scores[name].value, abs=1e-6)
