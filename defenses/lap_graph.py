"""LapGraph: edge-level differential privacy by the Laplace mechanism on the adjacency
(Wu et al., "LinkTeller", IEEE S&P 2022, the LapGraph mechanism).

A small share of the budget, epsilon_1 = ``count_share`` * epsilon, releases the edge count
T~ = T + Lap(1 / epsilon_1); the rest, epsilon_2 = epsilon - epsilon_1, perturbs every pair
i < j: A~_ij = A_ij + Lap(1 / epsilon_2). The T~ pairs with the largest A~ become the graph
the target is trained and queried on. Unlike EdgeRand it keeps the original density, so
utility degrades far more gracefully at the same epsilon.
"""

import numpy as np

from benchmark.methods import Defense
from benchmark.registry import register_defense
from defenses._edge_dp import check_size, edges_of, pair_bits
from defenses.edge_rand import LINKTELLER


@register_defense("lap-graph", modalities=("graph",), version="1.0", citation=LINKTELLER)
class LapGraph(Defense):
    kind = "train"

    def perturb_edges(
        self, edges: np.ndarray, num_nodes: int, rng: np.random.Generator
    ) -> np.ndarray:
        epsilon = float(self.cfg["epsilon"])
        pairs = check_size("lap-graph", num_nodes)
        epsilon_count = float(self.cfg["count_share"]) * epsilon
        count = int(round(len(edges) + rng.laplace(0.0, 1.0 / epsilon_count)))
        count = min(max(count, 0), pairs)
        noisy = pair_bits(edges, num_nodes) + rng.laplace(
            0.0, 1.0 / (epsilon - epsilon_count), pairs
        )
        top = np.argpartition(-noisy, count - 1)[:count] if count else np.zeros(0, np.int64)
        return edges_of(np.sort(top), num_nodes)
