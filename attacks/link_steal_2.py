"""Link stealing, attack-2 (He et al., USENIX Security 2021): the attacker knows the target
dataset's node features F (not the graph, no shadow data) and gets the target's posteriors.

Attack-2 is unsupervised, like attack-0. The authors' code (github.com/xinleihe/
link_stealing_attack, ``stealing_link/attack_2.py``, function ``attack_2``, lines 40-71)
computes, for a pair (u, v) and each of the eight distances d of attack-0:

- target posterior distance     d(f(u), f(v))             (the target GNN's posteriors);
- reference posterior distance  d(g(u), g(v))             (a reference MLP g on F alone);
- feature distance              d(x_u, x_v)               (the node features themselves);
- posterior difference          d(g(u), g(v)) - d(f(u), f(v))   (line 69).

The reference MLP sees no edges, so its posteriors say how alike two nodes are from their
features alone; the GNN's posteriors of linked nodes are pulled together by message passing.
The difference keeps what the graph added: large where the target says "closer than their
features explain", i.e. an edge. ``signal`` picks one of the four and ``distance`` one of the
eight; the edge score is minus the distance (or the difference itself).

Departures from the reference code, each a fix of something an attack may not do here:

- its AUC is flipped to 1 - AUC whenever it falls below 0.5 (``attack_2.py`` lines 87-88),
  an oracle's choice of direction; here the direction is fixed in advance (above);
- its reference MLP (``train.py`` lines 50-53, ``models.py`` class ``MLP``) is trained on the
  dataset's labelled training nodes, labels attack-2's threat model (features only) does not
  give the attacker. Here it is fitted to the target's own released posteriors of the attacked
  nodes (soft cross-entropy): features and posteriors only, attack-2's knowledge, and no
  extra query. An MLP cannot see edges, so it still gives the graph-free reference.

Black-box: one query per attacked node; the posteriors are released vectors (any output
defense applies to them).
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
from metrics.edge_ranking import LINK_STEALING

SIGNALS = ("difference", "target", "reference", "features")


def pair_distances(rows: np.ndarray, distance: str) -> np.ndarray:
    """[n, n] distances between the rows; a constant row (a label-only release, an all-zero
    feature vector) has an undefined correlation, so a tiny per-column offset keeps it finite
    without reordering pairs (as in attack-0)."""
    rows = rows.astype(np.float64)
    if distance in ("correlation", "cosine"):
        rows = rows + 1e-12 * np.arange(rows.shape[1])
    return np.nan_to_num(cdist(rows, rows, metric=distance), nan=0.0, posinf=0.0)


class ReferenceMLP(nn.Module):
    """The reference code's ``dense`` model: one ReLU hidden layer with dropout on the input
    and hidden units (``models.py`` class ``MLP``)."""

    def __init__(self, num_features: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.dropout = dropout
        self.hidden = nn.Linear(num_features, hidden)
        self.out = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.dropout(x, self.dropout, self.training)
        x = F.dropout(F.relu(self.hidden(x)), self.dropout, self.training)
        return self.out(x)


def fit_reference(
    features: torch.Tensor,
    posteriors: torch.Tensor,
    settings: dict,
    generator: torch.Generator,
    progress: bool,
) -> np.ndarray:
    """The reference MLP fitted to the released posteriors from the features alone; returns
    its posteriors of the same nodes."""
    torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    model = ReferenceMLP(
        features.shape[1], int(settings["hidden"]), posteriors.shape[1], float(settings["dropout"])
    )
    # Weight decay on the first layer only, as the reference's MLP._loss does.
    optimizer = torch.optim.Adam(
        [
            {"params": model.hidden.parameters(), "weight_decay": float(settings["weight_decay"])},
            {"params": model.out.parameters(), "weight_decay": 0.0},
        ],
        lr=float(settings["lr"]),
    )
    targets = posteriors / posteriors.sum(1, keepdim=True).clamp_min(1e-12)
    epochs = int(settings["epochs"])
    with progress_bar(epochs, "link-steal-2 reference MLP", progress) as bar:
        for _ in range(epochs):
            model.train()
            loss = -(targets * F.log_softmax(model(features), 1)).sum(1).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            bar.update()
    model.eval()
    with torch.no_grad():
        return F.softmax(model(features), 1).double().numpy()


@register_attack(
    "link-steal-2", modalities=("graph",), access="scores", version="1.0", citation=LINK_STEALING
)
class LinkStealing2(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> np.ndarray:
        signal, distance = self.cfg["signal"], self.cfg["distance"]
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal '{signal}'; choose one of {', '.join(SIGNALS)}")
        if distance not in DISTANCES:
            raise ValueError(f"unknown distance '{distance}'; choose one of {', '.join(DISTANCES)}")
        features = victims.features.float()
        if signal == "features":  # no query: the features alone
            return -pair_distances(features.numpy(), distance)
        posteriors = oracle(victims.nodes).double()
        if signal == "target":
            return -pair_distances(posteriors.numpy(), distance)
        reference = fit_reference(
            features, posteriors.float(), self.cfg["reference"], generator, self.progress
        )
        if signal == "reference":
            return -pair_distances(reference, distance)
        return pair_distances(reference, distance) - pair_distances(posteriors.numpy(), distance)
