"""Graph tasks: reconstructing the private edges of a GNN's training graph.

The target (``tasks/graph_models.py``: GCN by default, GraphSAGE or GAT) is trained
transductively on the private graph. Threat models:

- black-box (``scores`` and below): the released posterior of every attacked node (the target
  run on its private graph) and the node features;
- white-box (GraphMI's setting): node features, the labels of the attacked nodes, the target's
  weights and its first-layer representations on the private graph; never the edges.

A seeded ``shadow_fraction`` of the nodes is the attacker's own part of the graph (its edges
and labels are known: link stealing's shadow dataset); the attacked node set is the rest. Edge
scores are judged by ``metrics/edge_ranking.py``: ``auc``/``ap`` over all true undirected edges
among the attacked nodes against an equal number of seeded uniform non-edges (link stealing's
protocol), and ``auc_all_pairs`` over every pair of attacked nodes (GraphMI's protocol).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.cache import file_sha256
from benchmark.downloads import dataset, online
from benchmark.errors import MissingDataError, ReconstructionError
from benchmark.examples import roc_curve_points
from benchmark.methods import Defense, Task
from benchmark.progress import progress_bar
from benchmark.registry import Citation, register_task
from benchmark.seeding import derive_seed
from metrics.edge_ranking import (
    edge_auc,
    edge_auc_all_pairs,
    edge_average_precision,
    sample_non_edges,
)
from metrics.units import unit_auc
from tasks.graph_models import build_gnn, training_features
from tasks.training import accuracy

PLANETOID = Citation(
    "Revisiting Semi-Supervised Learning with Graph Embeddings",
    "Yang et al.",
    "ICML",
    2016,
    "https://arxiv.org/abs/1603.08861",
)


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
        return both_directions(self.edges)


def both_directions(edges: np.ndarray) -> torch.Tensor:
    """torch-geometric's edge_index [2, 2E] of undirected edges [E, 2]."""
    both = np.concatenate([edges, edges[:, ::-1]])
    return torch.from_numpy(np.ascontiguousarray(both.T)).long()


@dataclass
class GraphVictims:
    """Reconstruct the edges among ``nodes``; their features and labels are attacker knowledge."""

    nodes: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    num_edges: int  # edges among the attacked nodes: knowledge an attack may use as a budget

    def knowledge(self) -> dict:
        return {
            "attacked_nodes": len(self.nodes),
            "num_edges": self.num_edges,
            "features": True,
            "labels_of_attacked_nodes": True,
        }


def undirected_edges(edge_index: np.ndarray) -> np.ndarray:
    """Unique undirected edges (i < j) of a directed edge list [2, E], self-loops dropped."""
    pairs = np.sort(edge_index.T, axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    return np.unique(pairs, axis=0)


class GraphTask(Task):
    modality = "graph"
    primary_metric = "auc"
    metrics = ("auc", "ap", "auc_all_pairs")

    def load_graph(self) -> Graph:
        raise TypeError(f"{type(self).__name__} must implement load_graph()")

    def graph(self) -> Graph:
        if not hasattr(self, "_graph"):
            self._graph = self.load_graph()
        return self._graph

    # The released model ---------------------------------------------------------------
    def use_defense(self, defense: Defense) -> None:
        """Edge-level DP defenses (edge-rand, lap-graph) replace the graph the target is trained
        AND run on: the owner releases a model over the perturbed graph (as in LinkTeller)."""
        if defense is not self.defense:
            self.__dict__.pop("_model_edges", None)
            self.__dict__.pop("_dense_graph", None)
        super().use_defense(defense)

    def model_edges(self) -> np.ndarray:
        """The undirected edges the target is trained and queried on."""
        if not hasattr(self, "_model_edges"):
            graph = self.graph()
            rng = np.random.default_rng(derive_seed(self.seed, "defense", "edges"))
            self._model_edges = self.defense.perturb_edges(graph.edges, graph.num_nodes, rng)
        return self._model_edges

    def model_edge_index(self) -> torch.Tensor:
        return both_directions(self.model_edges())

    def model_graph(self, model: nn.Module) -> torch.Tensor:
        """What the target runs on: the edge list, or for a GCN on a dense graph (EdgeRand at
        small epsilon makes ~1/4 of all pairs edges) the dense adjacency, where one n x n
        matrix product is ~50x faster than message passing over a million edges."""
        edges = self.model_edges()
        n = self.graph().num_nodes
        if getattr(model, "architecture", None) != "GCN" or len(edges) <= 0.01 * n * n:
            return self.model_edge_index()
        if not hasattr(self, "_dense_graph"):
            dense = torch.zeros(n, n)
            dense[edges[:, 0], edges[:, 1]] = 1.0
            self._dense_graph = dense + dense.T
        return self._dense_graph

    # The attacker's own part of the graph -------------------------------------------------
    def shadow_nodes(self) -> np.ndarray:
        """A seeded ``shadow_fraction`` of the nodes whose induced subgraph the attacker owns
        (link stealing's shadow dataset); never part of the attacked node set."""
        graph = self.graph()
        count = int(round(float(self.cfg.get("shadow_fraction", 0.0)) * graph.num_nodes))
        rng = np.random.default_rng(derive_seed(self.seed, "shadow"))
        return np.sort(rng.choice(graph.num_nodes, count, replace=False))

    def public_data(self) -> Graph:
        """The attacker's shadow graph: features, labels and edges of the shadow nodes only,
        re-indexed 0..S-1, with a seeded half of its nodes for training and the rest for
        validation. The target's edges among the attacked nodes are never in it."""
        graph, shadow = self.graph(), self.shadow_nodes()
        local = -np.ones(graph.num_nodes, dtype=np.int64)
        local[shadow] = np.arange(len(shadow))
        edges = local[graph.edges]
        edges = edges[(edges >= 0).all(axis=1)]
        rng = np.random.default_rng(derive_seed(self.seed, "shadow", "split"))
        train = torch.zeros(len(shadow), dtype=torch.bool)
        train[torch.from_numpy(rng.permutation(len(shadow))[: len(shadow) // 2])] = True
        index = torch.from_numpy(shadow)
        return Graph(
            graph.x[index],
            graph.y[index],
            edges,
            train,
            ~train,
            torch.zeros(len(shadow), dtype=torch.bool),
            split="shadow (seeded halves)",
        )

    # Models ------------------------------------------------------------------------------
    def build_target(self) -> nn.Module:
        graph = self.graph()
        return build_gnn(self.cfg["target"], graph.x.shape[1], int(graph.y.max()) + 1)

    def train_target(self, model: nn.Module, progress: bool) -> dict:
        """Full-batch Adam, keeping the epoch with the best validation accuracy; under DP-SGD
        with the defense's gradients (DP-SGD's clipped, noised per-node ones,
        ``defenses/dp_sgd.py``)."""
        graph, defense = self.graph(), self.defense
        edge_index = self.model_graph(model)
        private = defense.graph_gradients(model, graph, edge_index)
        meta = fit_gnn(
            model,
            graph,
            edge_index,
            self.cfg["target"],
            defense.training_loss,
            f"target {self.cfg['name']}",
            progress,
            private,
        )
        meta.update(
            {
                "architecture": model.architecture,
                "split": graph.split,
                "num_edges": len(graph.edges),
                "num_edges_released_graph": len(self.model_edges()),
            }
        )
        if private is not None:
            meta["privacy"] = private.privacy_spent(int(self.cfg["target"]["epochs"]))
        return meta

    def probs_fn(self, target: nn.Module):
        graph = self.graph()
        edge_index = self.model_graph(target)

        def posteriors(nodes: torch.Tensor) -> torch.Tensor:
            return F.softmax(target(graph.x, edge_index), dim=-1)[torch.as_tensor(nodes)]

        return posteriors

    def representations_fn(self, target: nn.Module):
        """The target's first-layer node representations on its graph (H_A of MC-GRA)."""
        graph = self.graph()
        edge_index = self.model_graph(target)

        def hidden(nodes: torch.Tensor) -> torch.Tensor:
            return target.hidden(graph.x, edge_index)[torch.as_tensor(nodes)]

        return hidden

    # Attack and scoring ------------------------------------------------------------------
    def victims(self, budget: dict, release) -> GraphVictims:
        """The attacked node set: every node outside the attacker's shadow part, or a seeded
        sample of ``budget.nodes`` of them."""
        graph = self.graph()
        candidates = np.setdiff1d(np.arange(graph.num_nodes), self.shadow_nodes())
        count = budget.get("nodes", "all")
        if count != "all" and int(count) < len(candidates):
            rng = np.random.default_rng(derive_seed(self.seed, "victims"))
            candidates = np.sort(rng.choice(candidates, int(count), replace=False))
        nodes = torch.from_numpy(candidates)
        return GraphVictims(
            nodes,
            graph.x[nodes],
            graph.y[nodes],
            int(graph.y.max()) + 1,
            num_edges=len(self.true_edges(nodes)),
        )

    def check_reconstruction(self, recon, victims: GraphVictims) -> None:
        n = len(victims.nodes)
        if not isinstance(recon, (torch.Tensor, np.ndarray)):
            raise ReconstructionError(
                f"expected an edge-score matrix of shape ({n}, {n}), got {type(recon).__name__}"
            )
        if tuple(recon.shape) != (n, n):
            raise ReconstructionError(
                f"expected an edge-score matrix of shape ({n}, {n}) over "
                f"the attacked nodes, got {tuple(recon.shape)}"
            )
        if not np.isfinite(np.asarray(recon, dtype=np.float64)).all():
            raise ReconstructionError("edge scores contain NaN or inf values")

    def true_edges(self, nodes: torch.Tensor) -> np.ndarray:
        """The true undirected edges among ``nodes``, in local indices (i < j)."""
        graph = self.graph()
        local = -np.ones(graph.num_nodes, dtype=np.int64)
        local[nodes.numpy()] = np.arange(len(nodes))
        edges = local[graph.edges]
        return np.sort(edges[(edges >= 0).all(axis=1)], axis=1)

    def evaluation_pairs(self, victims: GraphVictims) -> tuple[np.ndarray, np.ndarray]:
        """(true edges, sampled non-edges) among the attacked nodes, in local indices."""
        edges = self.true_edges(victims.nodes)
        rng = np.random.default_rng(derive_seed(self.seed, "evaluation", "non_edges"))
        return edges, sample_non_edges(len(victims.nodes), edges, len(edges), rng)

    def score(self, recon, victims: GraphVictims, evaluator) -> dict:
        scores = np.asarray(recon, dtype=np.float64)
        positives, negatives = self.evaluation_pairs(victims)
        pos = scores[positives[:, 0], positives[:, 1]]
        neg = scores[negatives[:, 0], negatives[:, 1]]
        return {
            "auc": unit_auc(pos, neg, edge_auc(pos, neg)),
            "ap": edge_average_precision(pos, neg),
            "auc_all_pairs": edge_auc_all_pairs(scores, positives),
        }

    def examples(self, recon, victims: GraphVictims) -> dict:
        """The ROC curve behind ``auc`` (same positives and sampled negatives)."""
        scores = np.asarray(recon, dtype=np.float64)
        positives, negatives = self.evaluation_pairs(victims)
        return roc_curve_points(
            scores[positives[:, 0], positives[:, 1]], scores[negatives[:, 0], negatives[:, 1]]
        )

    @torch.no_grad()
    def utility(self, target: nn.Module, transform) -> dict:
        graph = self.graph()
        probs = transform(self.probs_fn(target)(torch.nonzero(graph.test_mask).squeeze(1)))
        return {"test_accuracy": accuracy(probs, graph.y[graph.test_mask])}


def fit_gnn(
    model: nn.Module,
    graph: Graph,
    edge_index: torch.Tensor,
    settings: dict,
    loss_fn,
    desc: str,
    progress: bool,
    private=None,
) -> dict:
    """Full-batch Adam (lr, weight decay and epochs from ``settings``) on the training nodes;
    keeps the weights of the epoch with the best validation accuracy (Kipf and Welling's
    protocol). ``private`` replaces the gradient by DP-SGD's."""
    optimizer = torch.optim.Adam(
        model.parameters(), lr=float(settings["lr"]), weight_decay=float(settings["weight_decay"])
    )
    best_val, best_state = -1.0, None
    features = training_features(model, graph.x)
    with progress_bar(int(settings["epochs"]), desc, progress) as bar:
        for _ in range(int(settings["epochs"])):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            if private is None:
                logits = model(features, edge_index)
                loss_fn(logits[graph.train_mask], graph.y[graph.train_mask]).backward()
            else:
                private.set_private_gradients()
            optimizer.step()
            model.eval()
            with torch.no_grad():
                logits = model(features, edge_index)
            val = accuracy(logits[graph.val_mask], graph.y[graph.val_mask])
            if val > best_val:
                best_val = val
                best_state = {k: v.clone() for k, v in model.state_dict().items()}
            bar.update()
    model.load_state_dict(best_state)
    model.eval()
    meta = {"val_accuracy": best_val}
    if graph.test_mask.any():
        with torch.no_grad():
            logits = model(features, edge_index)
        meta["test_accuracy"] = accuracy(logits[graph.test_mask], graph.y[graph.test_mask])
    return meta


@register_task(
    "sbm-citation",
    modalities=("graph",),
    version="1.0",
    citation=Citation(
        "Stochastic blockmodels and community structure in networks (degree-corrected SBM)",
        "Karrer and Newman",
        "Physical Review E",
        2011,
        "https://arxiv.org/abs/1008.3926",
    ),
)
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
        rng = np.random.default_rng(derive_seed(self.seed, "graph"))
        sizes = np.array(cfg["class_sizes"])
        labels = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))
        theta = 1.0 + rng.pareto(float(cfg["degree_tail"]), len(labels))
        edges = self._sample_edges(labels, theta, int(cfg["num_edges"]), rng)
        features = self._sample_features(labels, rng)
        y = torch.from_numpy(labels).long()
        return Graph(
            torch.from_numpy(features),
            y,
            edges,
            *planetoid_like_split(y, rng),
            split="random (seeded)",
        )

    def _sample_edges(
        self, labels: np.ndarray, theta: np.ndarray, count: int, rng: np.random.Generator
    ) -> np.ndarray:
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
        topics = rng.permutation(vocabulary)[: num_classes * int(cfg["topic_size"])]
        topics = topics.reshape(num_classes, -1)
        counts = 1 + rng.poisson(float(cfg["words_per_node"]) - 1, len(labels))
        owner = np.repeat(np.arange(len(labels)), counts)
        from_topic = rng.random(len(owner)) < float(cfg["topic_strength"])
        topic_words = topics[labels[owner], rng.integers(0, topics.shape[1], len(owner))]
        words = np.where(from_topic, topic_words, rng.integers(0, vocabulary, len(owner)))
        features = np.zeros((len(labels), vocabulary), dtype=np.float32)
        features[owner, words] = 1.0
        return features


def planetoid_like_split(y: torch.Tensor, rng: np.random.Generator) -> list[torch.Tensor]:
    """20 training nodes per class, then 500 validation and 1000 test nodes (Kipf and
    Welling's protocol on Planetoid), drawn with ``rng``."""
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


class PlanetoidTask(GraphTask):
    """A Planetoid citation graph read by torch-geometric from ``<data root>/planetoid/NAME/raw``.

    ``split: public`` is the standard Planetoid split (20 labelled nodes per class, 500
    validation, 1000 test); ``split: random`` draws a split of the same sizes from the seed.
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
                problems.append(f"missing: {path} (from {PLANETOID_SOURCE})")
            elif path.name in self.raw_sha256 and file_sha256(path) != self.raw_sha256[path.name]:
                problems.append(
                    f"sha256 mismatch: {path} (expected {self.raw_sha256[path.name]}"
                    f", the file of {PLANETOID_SOURCE}); replace it"
                )
        return problems

    def _download(self) -> None:
        from torch_geometric.datasets import Planetoid

        try:
            Planetoid(str(self.data_root / "planetoid"), self.dataset_name)
        except Exception as error:  # reported as missing files with the download's error
            raise MissingDataError(
                f"could not download {self.dataset_name} into {self.raw_dir()}: {error}. "
                f"Copy the Planetoid raw files there by hand."
            ) from error

    def load_graph(self) -> Graph:
        from torch_geometric.datasets import Planetoid

        root = self.cache_dir / "planetoid"
        raw_copy = root / self.dataset_name / "raw"
        raw_copy.mkdir(parents=True, exist_ok=True)
        for path in self.raw_files():
            if not (raw_copy / path.name).exists():
                shutil.copyfile(path, raw_copy / path.name)
        data = Planetoid(str(root), self.dataset_name)[0]
        edges = undirected_edges(data.edge_index.numpy())
        split = str(self.cfg.get("split", "public"))
        if split == "public":
            return Graph(
                data.x,
                data.y,
                edges,
                data.train_mask,
                data.val_mask,
                data.test_mask,
                split="public (Planetoid)",
            )
        if split == "random":
            rng = np.random.default_rng(derive_seed(self.seed, "split"))
            return Graph(
                data.x,
                data.y,
                edges,
                *planetoid_like_split(data.y, rng),
                split=f"random (20 per class / 500 / 1000, seed {self.seed})",
            )
        raise ValueError(
            f"unknown split '{split}' for task {self.cfg['name']}; set task.split to "
            f"'public' (the standard Planetoid split) or 'random' (seeded)"
        )


@register_task("citeseer", modalities=("graph",), version="1.0", real_data=True, citation=PLANETOID)
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
        "ind.citeseer.test.index": "2af990671580b6b2df5d158d1038f8292e30c9cd821b5453f399659b25b723d4",
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


@register_task("pubmed", modalities=("graph",), version="1.0", real_data=True, citation=PLANETOID)
class PubMed(PlanetoidTask):
    """PubMed (19,717 nodes, 44,324 edges, 500 TF-IDF features, 3 classes). Its raw files are
    not pinned by sha256 here (no copy was available to hash offline); the target record
    carries the hashes of the files it read."""

    dataset_name = "PubMed"

    def train_target(self, model: nn.Module, progress: bool) -> dict:
        meta = super().train_target(model, progress)
        meta["raw_sha256"] = {path.name: file_sha256(path) for path in self.raw_files()}
        return meta


def planetoid_fetcher(name: str):
    def fetch(data_root: Path, offline: bool) -> str:
        raw = data_root / "planetoid" / name / "raw"
        files = [raw / f"ind.{name.lower()}.{part}" for part in PLANETOID_FILES]
        if all(path.exists() for path in files):
            return f"{name.lower()}: present at {raw}"
        if offline or not online():
            raise MissingDataError(
                f"{name.lower()}: offline. Copy ind.{name.lower()}.{{{','.join(PLANETOID_FILES)}}}"
                f" from {PLANETOID_SOURCE} into {raw}/"
            )
        from torch_geometric.datasets import Planetoid

        Planetoid(str(data_root / "planetoid"), name)
        return f"{name.lower()}: downloaded to {raw}"

    return fetch


for _name in ("Cora", "CiteSeer", "PubMed"):
    dataset(_name.lower())(planetoid_fetcher(_name))
