"""BiDO: bilateral dependency optimisation (Peng et al., KDD 2022), the HSIC variant.

Training minimises the dependency between the input X and each hidden representation Z_j while
keeping Z_j dependent on the label Y (Eq. 6):

    L = CE(f(x), y) + lambda_x * sum_j HSIC(X, Z_j) - lambda_y * sum_j HSIC(Z_j, Y)

HSIC(A, B) = tr(K_A H K_B H) / (m - 1)^2 (Gretton et al. 2005) over the minibatch, Gaussian
kernels with width sigma * sqrt(dim) on flattened A and B (BiDO's normalised HSIC), the label
one-hot. The hidden representations are the target's stage outputs (``model.blocks``, e.g. the
ResNet stages) and its penultimate features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense


def gaussian_kernel(x: torch.Tensor, sigma: float) -> torch.Tensor:
    x = x.flatten(1)
    distances = torch.cdist(x, x).pow(2)
    return torch.exp(-distances / (2 * sigma**2 * x.shape[1]))


def hsic(k_a: torch.Tensor, k_b: torch.Tensor) -> torch.Tensor:
    m = k_a.shape[0]
    centring = torch.eye(m) - 1.0 / m
    return torch.trace(k_a @ centring @ k_b @ centring) / (m - 1) ** 2


def normalised_hsic(k_a: torch.Tensor, k_b: torch.Tensor) -> torch.Tensor:
    return hsic(k_a, k_b) / torch.sqrt(hsic(k_a, k_a) * hsic(k_b, k_b) + 1e-12)


@register_defense(
    "bido",
    modalities=("image",),
    version="1.0",
    citation=Citation(
        "Bilateral Dependency Optimization: Defending Against Model-inversion Attacks",
        "Peng et al.",
        "KDD",
        2022,
        "https://arxiv.org/abs/2206.05483",
    ),
)
class BiDO(Defense):
    kind = "train"

    def training_step(self, model, inputs, labels):
        hidden: list[torch.Tensor] = []
        handles = [
            block.register_forward_hook(lambda m, i, o: hidden.append(o)) for block in model.blocks
        ]
        handles.append(model.head.register_forward_hook(lambda m, i, o: hidden.append(i[0])))
        try:
            logits = model(inputs)
        finally:
            for handle in handles:
                handle.remove()
        sigma = float(self.cfg["sigma"])
        k_x = gaussian_kernel(inputs, sigma)
        k_y = gaussian_kernel(F.one_hot(labels, logits.shape[1]).float(), sigma)
        dependency_x = sum(normalised_hsic(k_x, gaussian_kernel(z, sigma)) for z in hidden)
        dependency_y = sum(normalised_hsic(gaussian_kernel(z, sigma), k_y) for z in hidden)
        return (
            self.training_loss(logits, labels)
            + float(self.cfg["lambda_x"]) * dependency_x
            - float(self.cfg["lambda_y"]) * dependency_y
        )
