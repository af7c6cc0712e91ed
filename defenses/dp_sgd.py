"""DP-SGD: differentially private training by per-example clipping and Gaussian noise
(Abadi et al., CCS 2016, Alg. 1), accounted with Opacus' RDP accountant (Mironov, CSF 2017).

Each step Poisson-samples examples with rate q, clips every per-example gradient to L2 norm C,

    g~_i = g_i / max(1, ||g_i||_2 / C),

adds N(0, sigma^2 C^2 I) to their sum and divides by the expected batch size q n. The record carries epsilon at the configured delta.

On graphs the per-example gradient of a training node is exact (one backward pass over its
2-hop computation graph, ``PerNodeGradients`` below), because message passing couples nodes and
Opacus' per-layer hooks would treat each row of a propagated matrix as an example. The
accountant's epsilon therefore bounds one training node's loss term; a node's features and
edges also enter its neighbours' computation graphs, so it is not an edge- or node-level
guarantee (Daigavane et al. 2021 bound that with degree-capped sampling). invbench reports the
number and lets the attacks measure what it protects.

On images one example is one training image: batch norm (which mixes examples) is replaced by
group norm (Opacus' ModuleValidator.fix), per-example gradients come from torch.func (vmap of
grad), and the target trains for ``epochs / q`` Poisson-sampled steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.methods import Defense
from benchmark.progress import progress_bar
from benchmark.registry import Citation, register_defense

# What one unit of DP-SGD's guarantee is, per modality (the record's privacy.level and .unit).
UNITS = {
    "example": "one training example (image)",
    "node-loss-term": (
        "one training node's loss term (node-level, not edge-level: an edge's presence is not "
        "what this epsilon bounds, and a node's features and edges also enter its neighbours' "
        "terms)"
    ),
}


@register_defense(
    "dp-sgd",
    modalities=("graph", "image"),
    version="1.1",
    citation=Citation(
        "Deep Learning with Differential Privacy",
        "Abadi et al.",
        "CCS",
        2016,
        "https://arxiv.org/abs/1607.00133",
    ),
)
class DPSGD(Defense):
    kind = "train"

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self._generator = None

    def _rng(self) -> torch.Generator:
        # Seeded from the global torch seed the runner sets before target training.
        if self._generator is None:
            self._generator = torch.Generator().manual_seed(int(torch.initial_seed()) % 2**31)
        return self._generator

    def poisson_sample(self, num_examples: int) -> torch.Tensor:
        """Indices of the examples in this step's batch, each kept with probability q."""
        keep = torch.rand(num_examples, generator=self._rng()) < float(self.cfg["sample_rate"])
        return torch.nonzero(keep).squeeze(1)

    def private_gradient(
        self,
        per_example: list[tuple[torch.Tensor, ...]],
        params: list[torch.Tensor],
        num_examples: int,
    ) -> list[torch.Tensor]:
        """sum_i clip_C(g_i) + N(0, sigma^2 C^2), divided by the expected batch size q n."""
        if not per_example:
            stacked = [torch.zeros(0, *p.shape) for p in params]
        else:
            stacked = [torch.stack(grads) for grads in zip(*per_example)]
        return self.private_gradient_batched(stacked, num_examples)

    def private_gradient_batched(
        self, per_example: list[torch.Tensor], num_examples: int
    ) -> list[torch.Tensor]:
        """The same from per-example gradients stacked along dim 0, one tensor per parameter."""
        clip = float(self.cfg["max_grad_norm"])
        sigma = float(self.cfg["noise_multiplier"])
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in per_example))
        factors = 1.0 / torch.clamp(norms / clip, min=1.0)
        expected = float(self.cfg["sample_rate"]) * num_examples
        return [
            (
                (g * factors.view(-1, *[1] * (g.dim() - 1))).sum(0)
                + sigma * clip * torch.randn(g.shape[1:], generator=self._rng())
            )
            / expected
            for g in per_example
        ]

    def adapt_target(self, model: torch.nn.Module) -> torch.nn.Module:
        """Batch norm mixes examples, so per-example clipping needs group norm instead."""
        if not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()):
            return model
        from opacus.validators import ModuleValidator

        return ModuleValidator.fix(model)

    def graph_gradients(self, model: torch.nn.Module, graph, edge_index: torch.Tensor):
        """Exact per-node gradients of a transductive GNN, clipped and noised (below)."""
        return PerNodeGradients(model, graph, edge_index, self)

    def fit_image_target(self, model, data, settings: dict, progress: bool) -> dict:
        from torch.func import functional_call, grad, vmap

        n = len(data.train_x)
        steps = int(round(int(settings["epochs"]) / float(self.cfg["sample_rate"])))
        optimizer = torch.optim.Adam(model.parameters(), lr=float(settings["lr"]))
        names = [name for name, _ in model.named_parameters()]
        buffers = dict(model.named_buffers())

        def example_loss(params: dict, image: torch.Tensor, label: torch.Tensor):
            logits = functional_call(model, (params, buffers), (image[None],))
            return torch.nn.functional.cross_entropy(logits, label[None])

        per_example_grad = vmap(grad(example_loss), in_dims=(None, 0, 0))
        model.train()
        with progress_bar(steps, "target (DP-SGD)", progress) as bar:
            for _ in range(steps):
                batch = self.poisson_sample(n)
                params = {k: v.detach() for k, v in model.named_parameters()}
                if len(batch):
                    grads = per_example_grad(params, data.train_x[batch], data.train_y[batch])
                    stacked = [grads[name] for name in names]
                else:
                    stacked = [torch.zeros(0, *params[name].shape) for name in names]
                for parameter, noisy in zip(
                    model.parameters(), self.private_gradient_batched(stacked, n)
                ):
                    parameter.grad = noisy
                optimizer.step()
                bar.update()
        model.eval()
        return {"privacy": self.privacy_spent(steps, n)}

    def privacy_spent(self, steps: int, num_examples: int, level: str = "example") -> dict:
        """Epsilon at delta, and ``level``: what one unit of the guarantee is. On graphs it is
        ``node-loss-term`` (one training node's loss term), never an edge: the leaderboard must
        not rank it beside the edge-level epsilons of edge-rand and lap-graph."""
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        accountant.history = [
            (float(self.cfg["noise_multiplier"]), float(self.cfg["sample_rate"]), steps)
        ]
        delta = float(self.cfg["delta"])
        return {
            "epsilon": accountant.get_epsilon(delta),
            "delta": delta,
            "steps": steps,
            "sample_rate": float(self.cfg["sample_rate"]),
            "noise_multiplier": float(self.cfg["noise_multiplier"]),
            "max_grad_norm": float(self.cfg["max_grad_norm"]),
            "examples": num_examples,
            "level": level,
            "unit": UNITS[level],
        }


class PerNodeGradients:
    """DP-SGD's per-example gradients for a transductive GNN.

    Each training node's loss depends on its 2-hop computation graph only, so its exact
    gradient is one backward pass over that subgraph (extracted once). Per step, nodes are
    Poisson-sampled with the defense's rate; the defense clips and noises the sum.
    """

    def __init__(self, model: torch.nn.Module, graph, edge_index: torch.Tensor, defense):
        from torch_geometric.utils import k_hop_subgraph

        self.model, self.graph, self.defense = model, graph, defense
        self.train_nodes = torch.nonzero(graph.train_mask).squeeze(1)
        self.subgraphs = []
        for node in self.train_nodes.tolist():
            subset, sub_edges, mapping, _ = k_hop_subgraph(
                node, 2, edge_index, relabel_nodes=True, num_nodes=graph.num_nodes
            )
            self.subgraphs.append((subset, sub_edges, int(mapping[0])))

    def set_private_gradients(self) -> None:
        params = [p for p in self.model.parameters() if p.requires_grad]
        chosen = self.defense.poisson_sample(len(self.train_nodes))
        per_example = []
        for index in chosen.tolist():
            subset, sub_edges, position = self.subgraphs[index]
            logits = self.model(self.graph.x[subset], sub_edges)[position : position + 1]
            loss = F.cross_entropy(logits, self.graph.y[self.train_nodes[index]].view(1))
            per_example.append(torch.autograd.grad(loss, params))
        for param, grad in zip(
            params, self.defense.private_gradient(per_example, params, len(self.train_nodes))
        ):
            param.grad = grad

    def privacy_spent(self, steps: int) -> dict:
        return self.defense.privacy_spent(steps, len(self.train_nodes), "node-loss-term")
