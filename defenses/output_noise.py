"""Output noise: Laplace noise on the released probability vector, clipped and renormalised.

    p~ = max(p + Lap(0, b), 0),   p_released = p~ / sum(p~)

with scale ``b`` (``scale`` in the YAML). If every entry is clipped to zero the released vector
is uniform. This perturbs what a black-box attacker observes; the weights, and so white-box
attacks, are untouched (those cells are n/a). The noise is the Laplace mechanism of Dwork et al.
(TCC 2006) applied to each released vector; no privacy guarantee is claimed for the vector.
"""

import torch

from benchmark.methods import Defense
from benchmark.registry import PROBABILITY_RELEASES, Citation, register_defense


@register_defense(
    "output-noise",
    modalities=PROBABILITY_RELEASES,
    version="1.0",
    citation=Citation(
        "Calibrating Noise to Sensitivity in Private Data Analysis (the Laplace mechanism)",
        "Dwork et al.",
        "TCC",
        2006,
        "https://doi.org/10.1007/11681878_14",
    ),
)
class OutputNoise(Defense):
    kind = "output"

    def transform_output(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        scale = float(self.cfg["scale"])
        uniform = torch.rand(probs.shape, generator=generator, dtype=probs.dtype) - 0.5
        # Inverse-CDF sampling of Laplace(0, scale), drawn from the cell's own generator.
        noise = -scale * uniform.sign() * torch.log1p(-2 * uniform.abs())
        noisy = (probs + noise).clamp_min(0)
        total = noisy.sum(dim=-1, keepdim=True)
        uniform_release = torch.full_like(noisy, 1.0 / probs.shape[-1])
        return torch.where(total > 0, noisy / total.clamp_min(1e-12), uniform_release)
