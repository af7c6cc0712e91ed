"""Random latents from the public GAN prior, with no search: the floor of GAN-based attacks.

    x_i = G(clip(z_i, -c, c)),  z_i ~ N(0, I)

the same prior, clipping and number of samples as GMI (Zhang et al. CVPR 2020) but without the
latent optimisation. It never queries the target, so whatever it scores is what the public prior
alone gives; a GAN attack that does not beat it shows no leakage from the model.
"""

from __future__ import annotations

import torch

from attacks.gan_prior import GANPrior, UsesGANPrior
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


@register_attack(
    "gan-random",
    modalities=("image",),
    access="none",
    version="1.0",
    citation=Citation(
        "The Secret Revealer: Generative Model-Inversion Attacks Against Deep "
        "Neural Networks (the public GAN prior, sampled without search)",
        "Zhang et al.",
        "CVPR",
        2020,
        "https://arxiv.org/abs/1911.07135",
    ),
)
class GANRandom(UsesGANPrior, Attack):
    runs_on_gpu = True

    @torch.no_grad()
    def run(self, access, victims, prior: GANPrior, budget: dict, generator: torch.Generator):
        count = len(victims.classes) * victims.per_class
        clip = float(self.cfg["clip"])
        z = torch.randn(count, prior.z_dim, generator=generator, device=self.device).clamp(
            -clip, clip
        )
        return prior.generator.eval()(z).view(
            len(victims.classes), victims.per_class, *victims.image_shape
        )
