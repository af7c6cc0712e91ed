"""The GNN targets of the graph tasks: GCN (default), GraphSAGE and GAT, selected by
``task.target.model``.

Every model maps (node features [N, F], graph) to class logits [N, C] and exposes
``hidden(x, graph)``, the first layer's node representations (what MC-GRA calls H_A). The GCN
also accepts a dense, relaxed adjacency [N, N] with entries in [0, 1] in place of an edge list:
white-box graph attacks (GraphMI, MC-GRA) optimise such a matrix through the target.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.nn import GATConv, GCNConv, SAGEConv


def nonzero_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout applied to the nonzero entries only.

    Identical in distribution to ``F.dropout`` (a dropped zero is still zero), and about 30x
    cheaper on sparse bag-of-words features, where drawing a Bernoulli per entry of the dense
    N x F matrix dominated the whole GCN step on CPU. A sparse ``x`` (see
    :func:`training_features`) stays sparse: only its stored values are dropped.
    """
    if not training or p == 0:
        return x
    if x.is_sparse:
        values = x.values()
        keep = torch.rand(len(values)) >= p
        return torch.sparse_coo_tensor(
            x.indices(), values * keep / (1 - p), x.shape, is_coalesced=True, check_invariants=False
        )
    rows, cols = x.nonzero(as_tuple=True)
    keep = torch.rand(len(rows)) >= p
    out = torch.zeros_like(x)
    out[rows[keep], cols[keep]] = x[rows[keep], cols[keep]] / (1 - p)
    return out


def training_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``x`` as the sparse tensor a model's first layer multiplies fastest, where it can.

    Bag-of-words features are about 99% zeros; a sparse X W (GCN, GAT) makes the 200-epoch target
    training several times cheaper on CPU with the same result up to float rounding.
    GraphSAGE's neighbour mean needs dense rows, so it keeps ``x`` dense.
    """
    if (
        getattr(model, "accepts_sparse_features", False)
        and x.is_floating_point()
        and not x.is_sparse
        and x.count_nonzero() < 0.1 * x.numel()
    ):
        return x.to_sparse().coalesce()
    return x


def is_dense_adjacency(graph: torch.Tensor) -> bool:
    return graph.is_floating_point() and graph.dim() == 2 and graph.shape[0] == graph.shape[1]


def dense_gcn_propagate(conv: GCNConv, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
    """GCNConv on a dense weighted adjacency: D^-1/2 (A + I) D^-1/2 (X W) + b (Kipf and Welling,
    Eq. 2), with D the row sums of A + I.

    X W is computed first, so the N x N product is against an N x hidden matrix: this ordering,
    not the normalised N x N matrix times the N x F features, is what keeps GraphMI's step
    cheap.
    """
    projected = conv.lin(x)
    scale = (adjacency.sum(dim=1) + 1).rsqrt().unsqueeze(1)
    _, out = normalized_propagation(adjacency, scale, projected)
    return out + conv.bias if conv.bias is not None else out


def normalized_propagation(
    adjacency: torch.Tensor, scale: torch.Tensor, projected: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(A (r * P), r * (A (r * P)) + r^2 * P) for r = (A 1 + 1)^-1/2: D^-1/2 (A + I) D^-1/2 P,
    with the neighbour sum A (r * P) returned too (its gradient needs it)."""
    neighbours = adjacency @ (scale * projected)
    return neighbours, scale * neighbours + scale * scale * projected


class GCN(nn.Module):
    """Two GCNConv layers (Kipf and Welling, ICLR 2017): hidden 16, ReLU, dropout 0.5."""

    architecture = "GCN"
    accepts_sparse_features = True  # GCNConv's first step is X W

    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.conv1 = GCNConv(in_features, hidden)
        self.conv2 = GCNConv(hidden, num_classes)
        self.dropout = dropout

    def _layer(self, conv: GCNConv, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        if is_dense_adjacency(graph):
            return dense_gcn_propagate(conv, x, graph)
        return conv(x, graph)

    def hidden(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        x = nonzero_dropout(x, self.dropout, self.training)
        return F.relu(self._layer(self.conv1, x, graph))

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        h = F.dropout(self.hidden(x, graph), self.dropout, self.training)
        return self._layer(self.conv2, h, graph)


class GraphSAGE(nn.Module):
    """Two SAGEConv layers with mean aggregation (Hamilton et al., NeurIPS 2017, Alg. 1)."""

    architecture = "GraphSAGE"

    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.conv1 = SAGEConv(in_features, hidden)
        self.conv2 = SAGEConv(hidden, num_classes)
        self.dropout = dropout

    def hidden(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        x = nonzero_dropout(x, self.dropout, self.training)
        return F.relu(self.conv1(x, graph))

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        h = F.dropout(self.hidden(x, graph), self.dropout, self.training)
        return self.conv2(h, graph)


class GAT(nn.Module):
    """Two GATConv layers (Velickovic et al., ICLR 2018): ``heads`` x ``hidden`` ELU units, one
    output head, dropout on inputs and attention coefficients."""

    architecture = "GAT"
    accepts_sparse_features = True  # GATConv's first step is X W

    def __init__(
        self, in_features: int, hidden: int, num_classes: int, dropout: float, heads: int = 8
    ):
        super().__init__()
        self.conv1 = GATConv(in_features, hidden, heads=heads, dropout=dropout)
        self.conv2 = GATConv(hidden * heads, num_classes, heads=1, dropout=dropout)
        self.dropout = dropout

    def hidden(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        x = nonzero_dropout(x, self.dropout, self.training)
        return F.elu(self.conv1(x, graph))

    def forward(self, x: torch.Tensor, graph: torch.Tensor) -> torch.Tensor:
        h = F.dropout(self.hidden(x, graph), self.dropout, self.training)
        return self.conv2(h, graph)


ARCHITECTURES = {"gcn": GCN, "sage": GraphSAGE, "gat": GAT}


def build_gnn(settings: dict, in_features: int, num_classes: int) -> nn.Module:
    name = str(settings.get("model", "gcn"))
    if name not in ARCHITECTURES:
        raise ValueError(
            f"unknown graph target model '{name}'; set task.target.model to one of "
            f"{', '.join(ARCHITECTURES)}"
        )
    extra = {"heads": int(settings.get("heads", 8))} if name == "gat" else {}
    return ARCHITECTURES[name](
        in_features, int(settings["hidden"]), num_classes, float(settings["dropout"]), **extra
    )
