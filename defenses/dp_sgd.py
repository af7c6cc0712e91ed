"""DP-SGD: differentially private training by per-example clipping and Gaussian noise
(Abadi et al., CCS 2016, Alg. 1), accounted with Opacus' RDP accountant (Mironov, CSF 2017).

Each step Poisson-samples examples with rate q, clips every per-example gradient to L2 norm C,

    g~_i = g_i / max(1, ||g_i||_2 / C),

adds N(0, sigma^2 C^2 I) to their sum and divides by the expected batch size q n. The record carries epsilon at the configured delta.

On graphs the per-example gradient of a training node is exact (one backward pass over its
2-hop computation graph, ``tasks/graphs.py``), because message passing couples nodes and
Opacus' per-layer hooks would treat each row of a propagated matrix as an example. The
accountant's epsilon therefore bounds one training node's loss term; a node's features and
edges also enter its neighbours' computation graphs, so it is not an edge- or node-level
guarantee (Daigavane et al. 2021 bound that with degree-capped sampling). invbench reports the
number and lets the attacks measure what it protects.
"""

from __future__ import annotations

import torch

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense


@register_defense(
    "dp-sgd", modalities=("graph",), defense_kind="train", version="1.0",
    citation=Citation("Deep Learning with Differential Privacy", "Abadi et al.", "CCS", 2016,
                      "https://arxiv.org/abs/1607.00133"))
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

    def private_gradient(self, per_example: list[tuple[torch.Tensor, ...]],
                         params: list[torch.Tensor], num_examples: int) -> list[torch.Tensor]:
        """sum_i clip_C(g_i) + N(0, sigma^2 C^2), divided by the expected batch size q n."""
        clip = float(self.cfg["max_grad_norm"])
        sigma = float(self.cfg["noise_multiplier"])
        total = [torch.zeros_like(p) for p in params]
        for grads in per_example:
            norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
            factor = 1.0 / max(1.0, float(norm) / clip)
            for acc, g in zip(total, grads):
                acc.add_(g, alpha=factor)
        expected = float(self.cfg["sample_rate"]) * num_examples
        return [(acc + sigma * clip * torch.randn(acc.shape, generator=self._rng())) / expected
                for acc in total]

    def privacy_spent(self, steps: int, num_examples: int) -> dict:
        from opacus.accountants import RDPAccountant

        accountant = RDPAccountant()
        accountant.history = [(float(self.cfg["noise_multiplier"]),
                               float(self.cfg["sample_rate"]), steps)]
        delta = float(self.cfg["delta"])
        return {"epsilon": accountant.get_epsilon(delta), "delta": delta, "steps": steps,
                "sample_rate": float(self.cfg["sample_rate"]),
                "noise_multiplier": float(self.cfg["noise_multiplier"]),
                "max_grad_norm": float(self.cfg["max_grad_norm"]),
                "examples": num_examples, "unit": "one training node's loss term"}
