"""MID: mutual-information regularisation via a variational information bottleneck (Wang et
al., AAAI 2021, Sec. 4, following Alemi et al. ICLR 2017).

The target's head becomes an encoder of its features h to a Gaussian q(z|h) = N(mu(h),
sigma(h)^2) in ``bottleneck`` dimensions and a linear classifier of z. Training minimises

    L = CE(f(z), y) + beta * KL(q(z|h) || N(0, I)),   z = mu + sigma * eps   (Eq. 9)

an upper bound on the mutual information I(X; Z) traded against accuracy. At inference the
model is deterministic (z = mu), so the released model is an ordinary classifier.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense


class VariationalBottleneck(nn.Module):
    def __init__(self, in_features: int, bottleneck: int, num_classes: int):
        super().__init__()
        self.encode = nn.Linear(in_features, 2 * bottleneck)
        self.classify = nn.Linear(bottleneck, num_classes)
        self.kl = torch.zeros(())

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        mu, raw_std = self.encode(features).chunk(2, dim=1)
        if not self.training:
            return self.classify(mu)
        std = F.softplus(raw_std - 5)
        self.kl = 0.5 * (mu.pow(2) + std.pow(2) - 2 * torch.log(std + 1e-8) - 1).sum(1).mean()
        return self.classify(mu + std * torch.randn_like(std))


@register_defense(
    "mid",
    modalities=("image",),
    version="1.0",
    citation=Citation(
        "Improving Robustness to Model Inversion Attacks via Mutual Information Regularization",
        "Wang et al.",
        "AAAI",
        2021,
        "https://arxiv.org/abs/2009.05241",
    ),
)
class MID(Defense):
    kind = "train"

    def adapt_target(self, model: nn.Module) -> nn.Module:
        head = model.head
        model.head = VariationalBottleneck(
            head.in_features, int(self.cfg["bottleneck"]), head.out_features
        )
        return model

    def training_step(self, model, inputs, labels):
        logits = model(inputs)
        return F.cross_entropy(logits, labels) + float(self.cfg["beta"]) * model.head.kl
