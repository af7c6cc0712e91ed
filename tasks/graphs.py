"""Graph tasks: reconstructing the private edges of a GNN's training graph.

The target is a 2-layer GCN (Kipf and Welling, ICLR 2017) trained transductively on the private
graph. Black-box attackers see the released posterior of every node and the node features;
white-box attackers also get the weights, never the edges. Edge scores are judged by
``metrics/edge_ranking.py``: all true undirected edges of the attacked node set against an equal
number of uniformly sampled non-edges (seeded), as in link stealing.
"""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_geometric.nn import GCNConv

from benchmark.cache import file_sha256
from benchmark.errors import MissingDataError, ReconstructionError
from benchmark.methods import Defense, Task
from benchmark.registry import Citation, register_task
from metrics.edge_ranking import edge_auc, edge_average_precision, sample_non_edges
from tasks.training import accuracy, progress_bar

PLANETOID = Citation("Revisiting Semi-Supervised Learning with Graph Embeddings", "Yang et al.",
                     "ICML", 2016, "https://arxiv.org/abs/1603.08861")


@dataclass
class Graph:
    x: torch.Tensor  # [N, F] node features
    y: torch.Tensor  # [N] labels
    edges: np.ndarray  # [E, 2] undirected edges, i < j, no duplicates or self-loops
    train_mask: torch.Tensor
    val_mask: torch.Tensor
    test_mask: torch.Tensor
    split: str

    @property
    def num_nodes(self) -> int:
        return len(self.y)

    @property
    def edge_index(self) -> torch.Tensor:
        both = np.concatenate([self.edges, self.edges[:, ::-1]])
        return torch.from_numpy(np.ascontiguousarray(both.T)).long()


@dataclass
class GraphVictims:
    """Reconstruct the edges among ``nodes``; their features and labels are attacker knowledge."""

    nodes: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    num_classes: int


def nonzero_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout applied to the nonzero entries only.

    Identical in distribution to ``F.dropout`` (a dropped zero is still zero), and about 30x
    cheaper on sparse bag-of-words features, where drawing a Bernoulli per entry of the dense
    N x F matrix dominated the whole GCN step on CPU.
    """
    if not training or p == 0:
        return x
    rows, cols = x.nonzero(as_tuple=True)
    keep = torch.rand(len(rows)) >= p
    out = torch.zeros_like(x)
    out[rows[keep], cols[keep]] = x[rows[keep], cols[keep]] / (1 - p)
    return out


class GCN(nn.Module):
    def __init__(self, in_features: int, hidden: int, num_classes: int, dropout: float):
        super().__init__()
        self.conv1 = GCNConv(in_features, hidden)
        self.conv2 = GCNConv(hidden, num_classes)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> torch.Tensor:
        x = nonzero_dropout(x, self.dropout, self.training)
        x = F.relu(self.conv1(x, edge_index))
        x = F.dropout(x, self.dropout, self.training)
        return self.conv2(x, edge_index)


def undirected_edges(edge_index: np.ndarray) -> np.ndarray:
    """Unique undirected edges (i < j) of a directed edge list [2, E], self-loops dropped."""
    pairs = np.sort(edge_index.T, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


class GraphTask(Task):
    modality = "graph"
    primary_metric = "auc"
    metrics = {"auc": True, "ap": True}

    def load_graph(self) -> Graph:
        raise TypeError(f"{type(self).__name__} must implement load_graph()")

    def graph(self) -> Graph:
        if not hasattr(self, "_graph"):
            self._graph = self.load_graph()
        return self._graph

    def public_data(self) -> Graph:
        # Link stealing's attacker knows node features; the target's edges are private.
        graph = self.graph()
        return Graph(graph.x, graph.y, np.zeros((0, 2), dtype=np.int64), graph.train_mask,
                     graph.val_mask, graph.test_mask, graph.split)

    def build_target(self) -> nn.Module:
        graph, settings = self.graph(), self.cfg["target"]
        return GCN(graph.x.shape[1], int(settings["hidden"]), int(graph.y.max()) + 1,
                   float(settings["dropout"]))

    def train_target(self, model: nn.Module, defense: Defense, progress: bool) -> dict:
        """Full-batch Adam; keeps the weights of the epoch with the best validation accuracy."""
        graph, settings = self.graph(), self.cfg["target"]
        edge_index = graph.edge_index
        optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]),
                                     weight_decay=float(settings["weight_decay"]))
        best_val, best_state = -1.0, None
        with progress_bar(int(settings["epochs"]), f"target {self.cfg['name']}", progress) as bar:
            for _ in range(int(settings["epochs"])):
                model.train()
                logits = model(graph.x, edge_index)
                loss = defense.training_loss(logits[graph.train_mask], graph.y[graph.train_mask])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                model.eval()
                with torch.no_grad():
                    logits = model(graph.x, edge_index)
                val = accuracy(logits[graph.val_mask], graph.y[graph.val_mask])
                if val > best_val:
                    best_val = val
                    best_state = {k: v.clone() for k, v in model.state_dict().items()}
                bar.update()
        model.load_state_dict(best_state)
        model.eval()
        with torch.no_grad():
            logits = model(graph.x, edge_index)
        return {"test_accuracy": accuracy(logits[graph.test_mask], graph.y[graph.test_mask]),
                "val_accuracy": best_val, "architecture": "GCN", "split": graph.split,
                "num_edges": len(graph.edges)}

    def probs_fn(self, target: nn.Module):
        graph = self.graph()
        edge_index = graph.edge_index

        def posteriors(nodes: torch.Tensor) -> torch.Tensor:
            return F.softmax(target(graph.x, edge_index), dim=-1)[torch.as_tensor(nodes)]

        return posteriors

    def victims(self, budget: dict, release) -> GraphVictims:
        graph = self.graph()
        count = budget.get("nodes", "all")
        if count == "all" or int(count) >= graph.num_nodes:
            nodes = torch.arange(graph.num_nodes)
        else:
            rng = np.random.default_rng(self.seed)
            nodes = torch.from_numpy(np.sort(rng.choice(graph.num_nodes, int(count), False)))
        return GraphVictims(nodes, graph.x[nodes], graph.y[nodes], int(graph.y.max()) + 1)

    def check_reconstruction(self, recon, victims: GraphVictims) -> None:
        n = len(victims.nodes)
        if not isinstance(recon, (torch.Tensor, np.ndarray)):
            raise ReconstructionError(f"expected an edge-score matrix of shape ({n}, {n}), got "
                                      f"{type(recon).__name__}")
        if tuple(recon.shape) != (n, n):
            raise ReconstructionError(f"expected an edge-score matrix of shape ({n}, {n}) over "
                                      f"the attacked nodes, got {tuple(recon.shape)}")
        if not np.isfinite(np.asarray(recon, dtype=np.float64)).all():
            raise ReconstructionError("edge scores contain NaN or inf values")

    def evaluation_pairs(self, victims: GraphVictims) -> tuple[np.ndarray, np.ndarray]:
        """(true edges, sampled non-edges) among the attacked nodes, in local indices."""
        graph = self.graph()
        local = -np.ones(graph.num_nodes, dtype=np.int64)
        local[victims.nodes.numpy()] = np.arange(len(victims.nodes))
        edges = local[graph.edges]
        edges = edges[(edges >= 0).all(axis=1)]
        rng = np.random.default_rng([self.seed, 7])
        return edges, sample_non_edges(len(victims.nodes), edges, len(edges), rng)

    def score(self, recon, victims: GraphVictims, evaluator) -> dict:
        scores = np.asarray(recon, dtype=np.float64)
        positives, negatives = self.evaluation_pairs(victims)
        pos = scores[positives[:, 0], positives[:, 1]]
        neg = scores[negatives[:, 0], negatives[:, 1]]
        return {"auc": edge_auc(pos, neg), "ap": edge_average_precision(pos, neg)}

    @torch.no_grad()
    def utility(self, target: nn.Module, transform) -> dict:
        graph = self.graph()
        probs = transform(self.probs_fn(target)(torch.nonzero(graph.test_mask).squeeze(1)))
        return {"test_accuracy": accuracy(probs, graph.y[graph.test_mask])}


@register_task("sbm-citation", modalities=("graph",), version="1.0",
               citation=Citation("Stochastic blockmodels and community structure in networks "
                                 "(degree-corrected SBM)", "Karrer and Newman",
                                 "Physical Review E", 2011, "https://arxiv.org/abs/1008.3926"))
class SBMCitation(GraphTask):
    """A synthetic citation graph with Cora's shape, generated deterministically from the seed.

    Degree-corrected stochastic block model: endpoint u is drawn with probability proportional
    to a heavy-tailed propensity theta_u; with probability ``homophily`` its partner comes from
    u's class (again proportional to theta), otherwise from another class. Each node has a
    sparse binary bag of words: ``words_per_node`` ~ Poisson draws, each from its class's topic
    with probability ``topic_strength`` and uniform over the vocabulary otherwise.
    """

    def load_graph(self) -> Graph:
        cfg = self.cfg
        rng = np.random.default_rng([self.seed, 2708])
        sizes = np.array(cfg["class_sizes"])
        labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
        theta = 1.0 + rng.pareto(float(cfg["degree_tail"]), len(labels))
        edges = self._sample_edges(labels, theta, int(cfg["num_edges"]), rng)
        features = self._sample_features(labels, rng)
        y = torch.from_numpy(labels).long()
        return Graph(torch.from_numpy(features), y, edges,
                     *self._planetoid_like_split(y, rng), split="random (seeded)")

    def _sample_edges(self, labels: np.ndarray, theta: np.ndarray, count: int,
                      rng: np.random.Generator) -> np.ndarray:
        """Draw candidate pairs in rounds until ``count`` distinct undirected edges exist."""
        homophily = float(self.cfg["homophily"])
        pairs = np.zeros((0, 2), dtype=np.int64)
        while True:
            u = rng.choice(len(labels), size=2 * count, p=theta / theta.sum())
            same = rng.random(2 * count) < homophily
            v = np.empty_like(u)
            for c in np.unique(labels):
                for in_class, mask in ((True, same), (False, ~same)):
                    rows = np.flatnonzero((labels[u] == c) & mask)
                    pool = np.flatnonzero((labels == c) == in_class)
                    v[rows] = rng.choice(pool, size=len(rows), p=theta[pool] / theta[pool].sum())
            drawn = np.sort(np.stack([u, v], axis=1), axis=1)
            pairs = np.concatenate([pairs, drawn[drawn[:, 0] != drawn[:, 1]]])
            _, first = np.unique(pairs, axis=0, return_index=True)
            if len(first) >= count:
                return pairs[np.sort(first)[:count]]

    def _sample_features(self, labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        cfg = self.cfg
        num_classes, vocabulary = int(labels.max()) + 1, int(cfg["num_features"])
        topics = rng.permutation(vocabulary)[:num_classes * int(cfg["topic_size"])]
        topics = topics.reshape(num_classes, -1)
        counts = 1 + rng.poisson(float(cfg["words_per_node"]) - 1, len(labels))
        owner = np.repeat(np.arange(len(labels)), counts)
        from_topic = rng.random(len(owner)) < float(cfg["topic_strength"])
        topic_words = topics[labels[owner], rng.integers(0, topics.shape[1], len(owner))]
        words = np.where(from_topic, topic_words, rng.integers(0, vocabulary, len(owner)))
        features = np.zeros((len(labels), vocabulary), dtype=np.float32)
        features[owner, words] = 1.0
        return features

    def _planetoid_like_split(self, y: torch.Tensor, rng: np.random.Generator):
        """20 training nodes per class, then 500 validation and 1000 test nodes, as in Cora."""
        n = len(y)
        order = rng.permutation(n)
        train = np.concatenate([order[y.numpy()[order] == c][:20] for c in range(int(y.max()) + 1)])
        rest = np.setdiff1d(order, train, assume_unique=True)
        rest = rest[rng.permutation(len(rest))]
        masks = [torch.zeros(n, dtype=torch.bool) for _ in range(3)]
        for mask, index in zip(masks, (train, rest[:500], rest[500:1500])):
            mask[torch.from_numpy(index)] = True
        return masks


PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
PLANETOID_SOURCE = "https://github.com/kimiyoung/planetoid/tree/master/data"


def online(host: str = "github.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


class PlanetoidTask(GraphTask):
    """A Planetoid citation graph read by torch-geometric from ``<data root>/planetoid/NAME/raw``.

    The standard public split (20 labelled nodes per class, 500 validation, 1000 test).
    torch-geometric writes its processed file next to ``raw/``; the raw files are copied to the
    cache first so that a read-only data root works.
    """

    dataset_name = ""
    raw_sha256: dict[str, str] = {}  # file name -> sha256 of the published raw file

    def raw_dir(self) -> Path:
        return self.data_root / "planetoid" / self.dataset_name / "raw"

    def raw_files(self) -> list[Path]:
        prefix = f"ind.{self.dataset_name.lower()}"
        return [self.raw_dir() / f"{prefix}.{name}" for name in PLANETOID_FILES]

    def data_problems(self) -> list[str]:
        if any(not path.exists() for path in self.raw_files()) and not self.offline and online():
            self._download()
        problems = []
        for path in self.raw_files():
            if not path.exists():
                problems.append(f"missing: {path}")
            elif file_sha256(path) != self.raw_sha256[path.name]:
                problems.append(f"sha256 mismatch: {path} (expected {self.raw_sha256[path.name]}"
                                f", the file of {PLANETOID_SOURCE}); replace it")
        return problems

    def _download(self) -> None:
        from torch_geometric.datasets import Planetoid

        try:
            Planetoid(str(self.data_root / "planetoid"), self.dataset_name)
        except Exception as error:  # reported as missing files with the download's error
            raise MissingDataError(
                f"could not download {self.dataset_name} into {self.raw_dir()}: {error}. "
                f"Copy the Planetoid raw files there by hand.") from error

    def load_graph(self) -> Graph:
        from torch_geometric.datasets import Planetoid

        root = self.cache_dir / "planetoid"
        raw_copy = root / self.dataset_name / "raw"
        raw_copy.mkdir(parents=True, exist_ok=True)
        for path in self.raw_files():
            if not (raw_copy / path.name).exists():
                shutil.copyfile(path, raw_copy / path.name)
        data = Planetoid(str(root), self.dataset_name)[0]
        return Graph(data.x, data.y, undirected_edges(data.edge_index.numpy()), data.train_mask,
                     data.val_mask, data.test_mask, split="public (Planetoid)")


@register_task("citeseer", modalities=("graph",), version="1.0", real_data=True,
               citation=PLANETOID)
class CiteSeer(PlanetoidTask):
    dataset_name = "CiteSeer"
    raw_sha256 = {
        "ind.citeseer.x": "d20de19150741e555de0ed037195630fc194114ebc7fd72ced62810148aa22f6",
        "ind.citeseer.tx": "539a8906a2da97628d212f2fdd668c109a8b3f0d36574b59e5d3fd5b5303da21",
        "ind.citeseer.allx": "2ac30345d95c9ec933a817ee0bdd6a5f077f8c184a20e696910192d534414668",
        "ind.citeseer.y": "8ba87e515d8e3ee3cf52f6d2c5b86aa73f11ecad825a808455209ec26cd54924",
        "ind.citeseer.ty": "55e5bd1ba1e733a04598753ad1a8d57957f4b8f89e74519f41f4f4938767e4ce",
        "ind.citeseer.ally": "f704b2d986dde6c2669934de1f3ae5696a6cf9455c0f6b2646a2d135ea0a1c95",
        "ind.citeseer.graph": "d79a4ef9d3e7169aee8946145f6b7306e35bc79bffad26346cfb94e10e9912a7",
        "ind.citeseer.test.index":
            "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
    }


@register_task("cora", modalities=("graph",), version="1.0", real_data=True, citation=PLANETOID)
class Cora(PlanetoidTask):
    dataset_name = "Cora"
    raw_sha256 = {
        "ind.cora.x": "23cfa55d91c6f624233f5eb7b6e3f141f1bd2b2ae39608a63cf5d084bb27baab",
        "ind.cora.tx": "b9afbaa4a400df991f6f02ef677e1e44da55ffc04801fd02f9e673987829226a",
        "ind.cora.allx": "9419ba2f26f5c35243db64aba110e0f35a04851609e0dc5433450676ca6b8543",
        "ind.cora.y": "94465c14eb53e04ca262198dcbb2521ee8af60fb3f3d546cd6ca24a511b0e7d1",
        "ind.cora.ty": "41f5ac76596a1699cc33f53084a2419e92961c42bb75f36fc38e616d348532ad",
        "ind.cora.ally": "2b998f5cc7fedc86e7f97ca2498f47a1ffc1462c29e2d578b23bf3f62b6e7d71",
        "ind.cora.graph": "58f13302f39dde8852dad6fe6d15b89b077b6d7f837626bce671ef80344b383d",
        "ind.cora.test.index": "297ce89af2b51a6a194181c7dbe1796c6a1cf9cd9349a88383b1b1e227867875",
    }
