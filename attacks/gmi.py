"""GMI: the generative model-inversion attack (Zhang et al., CVPR 2020).

Stage 1 trains a GAN prior on PUBLIC images only (``attacks/gan_prior.py``, WGAN-GP).
Stage 2 (Algorithm 1, Eqs. 3-5) searches the latent space for each attacked identity c:

    z* = argmin_z  L_prior(z) + lambda * L_id(z)
    L_prior(z) = -D(G(z))                    (Eq. 4, the critic's realism score)
    L_id(z)    = -log C_target(G(z))[c]      (Eq. 5, cross-entropy of the target)

with SGD + Nesterov momentum, z clipped to [-1, 1] after each step, and one random restart per
reconstruction (the paper's 5 restarts = ``samples_per_identity``). All identities and restarts
are optimised as one batch; the loss is summed over the batch so each latent's update does not
depend on how many run together.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks.gan_prior import GANPrior, UsesGANPrior
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack
from tasks.training import progress_bar


@register_attack(
    "gmi", modalities=("image",), access="whitebox", version="1.0",
    citation=Citation("The Secret Revealer: Generative Model-Inversion Attacks Against Deep "
                      "Neural Networks", "Zhang et al.", "CVPR", 2020,
                      "https://arxiv.org/abs/1911.07135"))
class GMI(UsesGANPrior, Attack):
    def run(self, access, victims, prior: GANPrior, budget: dict, generator: torch.Generator):
        generator_net, critic = prior.generator.eval(), prior.discriminator.eval()
        for parameter in prior.parameters():
            parameter.requires_grad_(False)
        labels = victims.classes.repeat_interleave(victims.per_class)
        z = torch.randn(len(labels), prior.z_dim, generator=generator).requires_grad_(True)
        optimizer = torch.optim.SGD([z], lr=float(self.cfg["lr"]),
                                    momentum=float(self.cfg["momentum"]), nesterov=True)
        lam, clip = float(self.cfg["lambda_id"]), float(self.cfg["clip"])
        with progress_bar(int(budget["steps"]), "gmi", self.progress) as bar:
            for _ in range(int(budget["steps"])):
                images = generator_net(z)
                prior_loss = -critic(images)
                identity_loss = F.cross_entropy(access.model(images), labels, reduction="none")
                loss = (prior_loss + lam * identity_loss).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    z.clamp_(-clip, clip)
                bar.update()
        with torch.no_grad():
            return generator_net(z).view(len(victims.classes), victims.per_class,
                                         *victims.image_shape)
