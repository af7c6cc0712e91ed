"""Link stealing, attack-0 (He et al., USENIX Security 2021, Sec. 4.1).

The unsupervised attack: two nodes joined by an edge get similar posteriors from a GNN, because
each one's output aggregates the other's features. The edge score of (u, v) is minus the
distance d(f(u), f(v)) between the released posteriors, for one of the paper's eight distances
(correlation performs best there). Black-box: one query per attacked node.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.distance import cdist

from benchmark.methods import Attack
from benchmark.registry import register_attack
from metrics.edge_ranking import LINK_STEALING

DISTANCES = (
    "correlation",
    "cosine",
    "euclidean",
    "chebyshev",
    "braycurtis",
    "canberra",
    "cityblock",
    "sqeuclidean",
)


@register_attack(
    "link-steal-0", modalities=("graph",), access="scores", version="1.0", citation=LINK_STEALING
)
class LinkStealing0(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> np.ndarray:
        distance = self.cfg["distance"]
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance '{distance}'; choose one of {', '.join(DISTANCES)}")
        posteriors = oracle(victims.nodes).double().numpy()
        # A constant posterior (e.g. a label-only release of one class) has an undefined
        # correlation; a tiny per-row offset keeps the distance finite without reordering pairs.
        if distance == "correlation":
            posteriors = posteriors + 1e-12 * np.arange(posteriors.shape[1])
        return -cdist(posteriors, posteriors, metric=distance)
