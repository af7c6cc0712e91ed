"""EdgeRand: edge-level differential privacy by randomized response on the adjacency
(Wu et al., "LinkTeller", IEEE S&P 2022, the EdgeRand mechanism).

Every pair i < j independently keeps its bit with probability 1 - s and is replaced by a fair
coin with probability s, where

    s = 2 / (exp(epsilon) + 1),

which makes each bit epsilon-edge-DP (Warner's randomized response). The target is trained AND
queried on the perturbed graph, so every released posterior inherits the guarantee. At small
epsilon almost half of all n(n-1)/2 pairs become edges: the graph is dense noise and both the
attack and the model's accuracy collapse, which is the trade-off LinkTeller reports.
"""

import numpy as np

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense
from defenses._edge_dp import check_size, edges_of, pair_bits

LINKTELLER = Citation(
    "LinkTeller: Recovering Private Edges from Graph Neural Networks via Influence Analysis",
    "Wu et al.",
    "IEEE S&P",
    2022,
    "https://arxiv.org/abs/2108.06504",
)


@register_defense("edge-rand", modalities=("graph",), version="1.0", citation=LINKTELLER)
class EdgeRand(Defense):
    kind = "train"

    def perturb_edges(
        self, edges: np.ndarray, num_nodes: int, rng: np.random.Generator
    ) -> np.ndarray:
        epsilon = float(self.cfg["epsilon"])
        pairs = check_size("edge-rand", num_nodes)
        s = 2.0 / (np.exp(epsilon) + 1.0)
        bits = pair_bits(edges, num_nodes)
        replaced = rng.random(pairs) < s
        coins = rng.random(pairs) < 0.5
        return edges_of(np.flatnonzero(np.where(replaced, coins, bits)), num_nodes)
