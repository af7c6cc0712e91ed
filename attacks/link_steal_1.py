"""Link stealing, attack-1 (He et al., USENIX Security 2021, Sec. 4.3): a supervised attack
trained on a shadow graph the attacker owns.

The attacker trains a shadow GNN on its own graph (the task's seeded shadow part: features,
labels and edges of nodes disjoint from the attacked set), computes its posteriors, and
trains an MLP on node pairs of the shadow graph (every shadow edge against as many sampled
non-edges) to tell edges from non-edges. invbench pools the pairs of ``shadow_models`` shadow
GNNs (different initialisations) because the shadow part is small; see ``_shadow_pairs``. The pair features are dataset-agnostic, so the MLP
transfers to the target's posteriors (Sec. 4.3, "Attack-1"):

- the eight distances of attack-0 between the two posteriors;
- the four pairwise operations (average, Hadamard, |u - v|, (u - v)^2) on the two posteriors'
  entropies.

The trained MLP is this attack's prior (cached, trained on public data only). At attack time:
one query per attacked node, then the MLP scores every pair.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from scipy.spatial.distance import cdist

from attacks.link_steal_0 import DISTANCES
from benchmark.methods import Attack
from benchmark.progress import progress_bar
from benchmark.registry import register_attack
from metrics.edge_ranking import LINK_STEALING, sample_non_edges
from tasks.graph_models import build_gnn
from tasks.graphs import fit_gnn

NUM_FEATURES = len(DISTANCES) + 4


def pair_features(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """[len(left), len(right), 12] features of every (left row, right row) pair."""
    blocks = [cdist(left, right, metric=metric) for metric in DISTANCES]
    entropy = [-(p * np.log(np.clip(p, 1e-12, None))).sum(1) for p in (left, right)]
    e_left, e_right = entropy[0][:, None], entropy[1][None, :]
    blocks += [
        (e_left + e_right) / 2,
        e_left * e_right,
        np.abs(e_left - e_right),
        (e_left - e_right) ** 2,
    ]
    return np.nan_to_num(np.stack(blocks, axis=-1), nan=0.0, posinf=0.0)


class PairClassifier(nn.Module):
    """MLP on standardised pair features (32 and 32 ReLU units, as in the paper's attack)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(NUM_FEATURES, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )
        self.register_buffer("mean", torch.zeros(NUM_FEATURES))
        self.register_buffer("std", torch.ones(NUM_FEATURES))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std).squeeze(-1)


@register_attack(
    "link-steal-1", modalities=("graph",), access="scores", version="1.0", citation=LINK_STEALING
)
class LinkStealing1(Attack):
    def build_prior(self, task) -> nn.Module:
        return PairClassifier(int(self.cfg["prior"]["hidden"]))

    def _shadow_pairs(self, shadow, progress: bool) -> tuple[np.ndarray, np.ndarray, list]:
        """Pair features and labels from ``shadow_models`` shadow GNNs trained on the shadow
        graph from different initialisations: every shadow edge and as many sampled non-edges,
        once per model. One shadow GNN trained on a few hundred nodes makes the transfer a
        lottery of its initialisation (Cora AUC 0.79-0.92 over seeds); several let the MLP
        learn what is common to them."""
        settings = self.cfg["prior"]["shadow_model"]
        rng = np.random.default_rng(int(torch.initial_seed()) % 2**32)
        features, labels, accuracies = [], [], []
        for index in range(int(self.cfg["prior"]["shadow_models"])):
            model = build_gnn(settings, shadow.x.shape[1], int(shadow.y.max()) + 1)
            meta = fit_gnn(
                model,
                shadow,
                shadow.edge_index,
                settings,
                F.cross_entropy,
                f"link-steal-1 shadow GNN {index + 1}",
                progress,
            )
            accuracies.append(meta["val_accuracy"])
            with torch.no_grad():
                posteriors = F.softmax(model(shadow.x, shadow.edge_index), 1).double().numpy()
            every_pair = pair_features(posteriors, posteriors)
            negatives = sample_non_edges(len(shadow.y), shadow.edges, len(shadow.edges), rng)
            for pairs, label in ((shadow.edges, 1.0), (negatives, 0.0)):
                features.append(every_pair[pairs[:, 0], pairs[:, 1]])
                labels.append(np.full(len(pairs), label))
        return np.concatenate(features), np.concatenate(labels), accuracies

    def train_prior(self, prior: PairClassifier, shadow, progress: bool) -> dict:
        if len(shadow.edges) < 10:
            raise ValueError(
                f"link-steal-1 needs a shadow graph with edges, and the task's shadow part has "
                f"{len(shadow.edges)}; raise task.shadow_fraction (0.2 gives ~200 on Cora)"
            )
        features, labels, accuracies = self._shadow_pairs(shadow, progress)
        features = torch.from_numpy(features).float()
        targets = torch.from_numpy(labels).float()
        prior.mean.copy_(features.mean(0))
        prior.std.copy_(features.std(0).clamp_min(1e-6))
        optimizer = torch.optim.Adam(prior.parameters(), lr=float(self.cfg["prior"]["lr"]))
        epochs = int(self.cfg["prior"]["epochs"])
        with progress_bar(epochs, "link-steal-1 attack MLP", progress) as bar:
            for _ in range(epochs):
                loss = F.binary_cross_entropy_with_logits(prior(features), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update()
        with torch.no_grad():
            train_accuracy = ((prior(features) > 0).float() == targets).float().mean().item()
        return {
            "shadow_nodes": len(shadow.y),
            "shadow_edges": len(shadow.edges),
            "shadow_models_val_accuracy": accuracies,
            "pair_train_accuracy": train_accuracy,
        }

    def run(
        self, oracle, victims, prior: PairClassifier, budget: dict, generator: torch.Generator
    ) -> torch.Tensor:
        posteriors = oracle(victims.nodes).double().numpy()
        scores = torch.empty(len(posteriors), len(posteriors))
        block = 256
        with torch.no_grad():
            for start in range(0, len(posteriors), block):
                rows = pair_features(posteriors[start : start + block], posteriors)
                scores[start : start + block] = prior(torch.from_numpy(rows).float())
        return scores
