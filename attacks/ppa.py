"""PPA-style attack: Plug & Play Attacks (Struppek et al., ICML 2022) on the shared public GAN.

PPA decouples the attack from the prior: any pretrained generator is "plugged in". Here it is
the same public WGAN-GP prior GMI uses (``attacks/gan_prior.py``), so the difference between the
two rows is PPA's attack recipe alone (Sec. 4):

1. Optimisation with the Poincare identity loss (Eq. 3, ``poincare_loss``) on randomly
   augmented images (random resized crop, flip), Adam, latents clipped like GMI's;
2. ``candidates_per_sample`` x more candidates than requested reconstructions, then final
   selection (Sec. 4.3): each candidate is scored by the target's mean confidence in its identity
   over ``selection_views`` augmented views, and the best ``samples_per_identity`` per identity
   are returned. Every forward pass of the target, selection included, is a counted query.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks._image_objectives import freeze, poincare_loss, random_augment, search_in_budget
from attacks.gan_prior import GANPrior, UsesGANPrior
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


@register_attack(
    "ppa",
    modalities=("image",),
    access="whitebox",
    version="1.0",
    citation=Citation(
        "Plug & Play Attacks: Towards Robust and Flexible Model Inversion Attacks",
        "Struppek et al.",
        "ICML",
        2022,
        "https://arxiv.org/abs/2201.12179",
    ),
)
class PPA(UsesGANPrior, Attack):
    runs_on_gpu = True

    def run(self, access, victims, prior: GANPrior, budget: dict, generator: torch.Generator):
        generator_net = freeze(prior.generator)
        identities, per = len(victims.classes), victims.per_class
        factor = int(self.cfg["candidates_per_sample"])
        labels = victims.classes.to(self.device).repeat_interleave(per * factor)
        z = torch.randn(
            len(labels), prior.z_dim, generator=generator, device=self.device
        ).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=float(self.cfg["lr"]))
        clip = float(self.cfg["clip"])

        def loss() -> torch.Tensor:
            images = random_augment(generator_net(z), generator=generator)
            return poincare_loss(access.model(images), labels)

        search_in_budget(
            self, [z], loss, optimizer, budget, after_step=lambda: z.clamp_(-clip, clip)
        )
        with torch.no_grad():
            candidates = generator_net(z)
            confidence = torch.stack(
                [
                    F.softmax(access.model(random_augment(candidates, generator=generator)), dim=1)
                    .gather(1, labels[:, None])
                    .squeeze(1)
                    for _ in range(int(self.cfg["selection_views"]))
                ]
            ).mean(dim=0)
            best = confidence.view(identities, per * factor).topk(per, dim=1).indices
            candidates = candidates.view(identities, per * factor, *victims.image_shape)
            return torch.stack([candidates[i, best[i]] for i in range(identities)])
