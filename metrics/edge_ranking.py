"""Edge-reconstruction metrics: ranking true edges above non-edges.

Two protocols, so that our numbers sit beside both papers':

- ``auc`` / ``ap`` (link stealing's, He et al. USENIX Security 2021): the positives are all
  true undirected edges among the attacked nodes; the negatives are an equal number of node
  pairs sampled uniformly among non-edges with a seeded generator; AUC is the area under the ROC
  curve of the attack's scores, AP the average precision.
- ``auc_all_pairs`` (GraphMI's, Zhang et al. IJCAI 2021): the ROC AUC over every unordered pair
  of distinct attacked nodes, edges positive. Non-edges outnumber edges about 700 to 1 on Cora,
  which changes AP a lot but AUC little.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import average_precision_score

from benchmark.registry import Citation, register_metric

LINK_STEALING = Citation(
    "Stealing Links from Graph Neural Networks",
    "He et al.",
    "USENIX Security",
    2021,
    "https://arxiv.org/abs/2005.02131",
)


def sample_non_edges(
    num_nodes: int, edges: np.ndarray, count: int, rng: np.random.Generator
) -> np.ndarray:
    """``count`` distinct unordered pairs (i < j) that are not in ``edges`` ([E, 2], i < j)."""
    existing = set(map(tuple, np.sort(edges, axis=1).tolist()))
    chosen: set[tuple[int, int]] = set()
    while len(chosen) < count:
        pairs = rng.integers(0, num_nodes, size=(2 * (count - len(chosen)) + 16, 2))
        for i, j in pairs.tolist():
            if i == j:
                continue
            pair = (min(i, j), max(i, j))
            if pair not in existing and pair not in chosen:
                chosen.add(pair)
                if len(chosen) == count:
                    break
    return np.array(sorted(chosen), dtype=np.int64).reshape(-1, 2)


def rank_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC through the Mann-Whitney U statistic: (sum of the positives' ranks - P(P+1)/2)
    / (P N), with tied scores sharing their average rank (a tie counts 1/2). Equal to
    scikit-learn's roc_auc_score with one sort instead of a whole ROC curve (GraphMI's
    all-pairs AUC sorts millions of pairs in every graph cell)."""
    positive = np.asarray(positive, dtype=bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError(f"AUC needs positives and negatives, got {n_pos} and {n_neg}")
    ranks = rankdata(np.asarray(scores, dtype=np.float64))
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@register_metric("auc", higher_is_better=True, modalities=("graph",), citation=LINK_STEALING)
def edge_auc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """ROC AUC = P(score of a random edge > score of a random non-edge), ties counting 1/2."""
    labels = np.r_[np.ones(len(positive_scores), bool), np.zeros(len(negative_scores), bool)]
    return rank_auc(np.r_[positive_scores, negative_scores], labels)


@register_metric("ap", higher_is_better=True, modalities=("graph",), citation=LINK_STEALING)
def edge_average_precision(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Average precision: sum_n (R_n - R_{n-1}) P_n over score thresholds, edges positive."""
    labels = np.r_[np.ones(len(positive_scores)), np.zeros(len(negative_scores))]
    return float(average_precision_score(labels, np.r_[positive_scores, negative_scores]))


@register_metric(
    "auc_all_pairs",
    higher_is_better=True,
    modalities=("graph",),
    citation=Citation(
        "GraphMI: Extracting Private Graph Data from Graph Neural Networks",
        "Zhang et al.",
        "IJCAI",
        2021,
        "https://arxiv.org/abs/2106.02820",
    ),
)
def edge_auc_all_pairs(scores: np.ndarray, edges: np.ndarray) -> float:
    """ROC AUC over all pairs i < j of an [n, n] score matrix; ``edges`` [E, 2] (i < j) are the
    positives, every other pair a negative. The score of (i, j) is read from row i, column j."""
    n = scores.shape[0]
    rows, cols = np.triu_indices(n, k=1)
    labels = np.zeros((n, n), dtype=bool)
    labels[edges[:, 0], edges[:, 1]] = True
    return rank_auc(scores[rows, cols], labels[rows, cols])
