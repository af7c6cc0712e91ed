"""GraphMI (Zhang et al., IJCAI 2021): white-box model inversion of a GCN's training edges.

Knowledge: the node features X, the labels y of the attacked nodes, the target's weights; not
the edges. The attack optimises a relaxed symmetric adjacency A in [0, 1]^{n x n} by projected
gradient descent on (Eq. 6)

    L(A) = CE(f_theta(X, A), y) + alpha ||A||_2 + beta tr(X^T L_A X)

(cross-entropy of the target on the known labels; a sparsity term; feature smoothness, Eq. 5,
switched on after ``smooth_after`` steps as in the reference code), projecting after each step
onto {0 <= A <= 1, sum A <= |E|} (Sec. 3.2), where the number of edges |E| among the attacked
nodes is attacker knowledge (written in the record). Edge scores come from the graph
auto-encoder module (Sec. 3.3): the target's first layer H = ReLU(A_hat X W_1) on the
recovered A, decoded by the inner product of L2-normalised rows. The reference decodes with
ReLU(cos), which ties every negative pair at 0; the cosine itself ranks identically above 0.

Every step costs a few O(n^2) passes with the gradient in closed form and applied in place
(``attacks/_relaxed_adjacency.py``); the reference back-propagates through A_hat X and
n x n x F products and takes ~250 s on Cora on 2 cores.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from attacks._relaxed_adjacency import (
    DenseGCN,
    RelaxedAdjacency,
    cosine_scores,
    feature_smoothness,
    smoothness_step,
)
from benchmark.methods import Attack
from benchmark.progress import progress_bar
from benchmark.registry import Citation, register_attack

GRAPHMI = Citation(
    "GraphMI: Extracting Private Graph Data from Graph Neural Networks",
    "Zhang et al.",
    "IJCAI",
    2021,
    "https://arxiv.org/abs/2106.02820",
)


@register_attack(
    "graphmi", modalities=("graph",), access="whitebox", version="1.0", citation=GRAPHMI
)
class GraphMI(Attack):
    def run(self, access, victims, prior, budget: dict, generator: torch.Generator):
        gcn = DenseGCN(access, victims.features.float())
        cfg = self.cfg
        lr, sparsity, smoothness = (
            float(cfg["lr"]),
            float(cfg["sparsity"]),
            float(cfg["smoothness"]),
        )
        x, labels = victims.features.float(), victims.labels
        adjacency = RelaxedAdjacency(len(labels))
        gram = x @ x.T
        sq_norms = gram.diagonal().clone()
        onehot = F.one_hot(labels, victims.num_classes).float()
        edge_budget = float(cfg["edge_budget_ratio"]) * victims.num_edges
        steps = int(budget["steps"])  # the suite owns it, alike for every attack
        with progress_bar(steps, "graphmi", self.progress) as bar:
            for step in range(steps):
                state = gcn.forward(adjacency.matrix)
                # Cross-entropy (mean over the attacked nodes): dL/dlogits = (softmax - y) / n.
                d_logits = (torch.softmax(state["logits"], 1) - onehot) / len(labels)
                d_degree, rho = None, None
                if step >= int(cfg["smooth_after"]):
                    _, rho, d_degree = feature_smoothness(adjacency.matrix, gram, sq_norms)
                    d_degree = smoothness * d_degree
                low_rank = gcn.low_rank_gradient(state, d_logits, d_degree=d_degree)
                # alpha ||a||_2 has gradient alpha a / ||a||: a shrinkage of every pair weight.
                norm = float(adjacency.matrix.norm()) / math.sqrt(2)
                if norm > 0:
                    adjacency.matrix.mul_(1 - lr * sparsity / norm)
                adjacency.step(low_rank, lr)
                if rho is not None:
                    smoothness_step(adjacency, gram, rho, smoothness, lr)
                adjacency.project(edge_budget)
                bar.update()
        return cosine_scores(gcn.forward(adjacency.matrix)["hidden"])
