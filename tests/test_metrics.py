"""Metrics against hand-computed values."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metrics.attack_accuracy import attack_accuracy
from metrics.edge_ranking import (
    edge_auc,
    edge_auc_all_pairs,
    edge_average_precision,
    rank_auc,
    sample_non_edges,
)
from metrics.knn_distance import knn_feature_distance
from metrics.text_overlap import exact_match, mean_sentence_bleu, token_set_f1


def test_attack_accuracy_top1_and_top2():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0], [1.0, 3.0, 2.0], [2.0, 0.0, 1.0]])
    targets = torch.tensor([0, 1, 2, 1])
    # top-1 predictions 0, 2, 1, 0 -> only the first is right.
    assert attack_accuracy(logits, targets, 1) == pytest.approx(0.25)
    # top-2 sets {0,1}, {2,1}, {1,2}, {0,2} -> right for rows 0, 1, 2.
    assert attack_accuracy(logits, targets, 2) == pytest.approx(0.75)
    assert attack_accuracy(logits, targets, 5) == 1.0  # k >= classes


def test_knn_distance_takes_nearest_private_image_of_the_same_class():
    recon = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    recon_labels = torch.tensor([0, 1])
    private = torch.tensor([[0.0, 1.0], [3.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    private_labels = torch.tensor([0, 0, 1, 1])
    # class 0: min(1, 9) = 1; class 1: min(0, 2) = 0 -> mean 0.5. The (0, 0) image of class 1
    # is closer to the first reconstruction but belongs to another class.
    assert knn_feature_distance(recon, recon_labels, private, private_labels) == pytest.approx(0.5)


def test_auc_and_average_precision_hand_computed():
    positives = np.array([0.9, 0.4])
    negatives = np.array([0.5, 0.1])
    # pairs (pos > neg): 0.9>0.5, 0.9>0.1, 0.4>0.1 -> 3 of 4.
    assert edge_auc(positives, negatives) == pytest.approx(0.75)
    # ranking 0.9(+) 0.5(-) 0.4(+) 0.1(-): AP = 0.5*1 + 0.5*(2/3).
    assert edge_average_precision(positives, negatives) == pytest.approx(0.5 + 1 / 3)
    assert edge_auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)


def test_rank_auc_counts_ties_as_half_like_the_roc_curve():
    # positives 0.5, 0.5 against negatives 0.5, 0.2: pairs (pos > neg) 1 + 1, ties 1/2 + 1/2 -> 3/4
    assert rank_auc(np.array([0.5, 0.5, 0.5, 0.2]), np.array([1, 1, 0, 0])) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 500).astype(float)  # many ties
    labels = rng.random(500) < 0.3
    assert rank_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    with pytest.raises(ValueError, match="positives and negatives"):
        rank_auc(np.array([0.1, 0.2]), np.array([0, 0]))


def test_non_edges_are_distinct_unordered_and_seeded():
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    sample = sample_non_edges(6, edges, 8, np.random.default_rng(0))
    assert len(sample) == 8 and (sample[:, 0] < sample[:, 1]).all()
    assert not {tuple(p) for p in sample.tolist()} & {tuple(p) for p in edges.tolist()}
    assert len({tuple(p) for p in sample.tolist()}) == 8
    again = sample_non_edges(6, edges, 8, np.random.default_rng(0))
    assert (sample == again).all()


def test_text_metrics_hand_computed():
    references = ["name: Ann Lee | city: Rome", "a b c d"]
    predictions = ["name: Ann Lee | city: Rome", "a b x"]
    assert mean_sentence_bleu([references[0]], [references[0]]) == pytest.approx(100.0)
    # set F1 of {a,b,x} vs {a,b,c,d}: p = 2/3, r = 1/2 -> F1 = 4/7; first pair F1 = 1.
    assert token_set_f1(predictions, references) == pytest.approx((1 + 4 / 7) / 2)
    assert exact_match(predictions, references) == pytest.approx(0.5)
    assert mean_sentence_bleu(["zzz"], ["a b c d"]) == pytest.approx(0.0)


def test_auc_all_pairs_by_hand():
    # 4 nodes, pairs (i<j): 01 02 03 12 13 23; edges 01 and 23.
    scores = np.array([[0, 0.9, 0.1, 0.4], [0, 0, 0.5, 0.2], [0, 0, 0, 0.3], [0, 0, 0, 0]])
    edges = np.array([[0, 1], [2, 3]])
    # edge scores 0.9 and 0.3; non-edges 0.1, 0.4, 0.5, 0.2. Pairs ranked right:
    # 0.9 beats all 4, 0.3 beats 0.1 and 0.2: 6 of 8.
    assert edge_auc_all_pairs(scores, edges) == pytest.approx(6 / 8)
