"""GMI: the generative model-inversion attack (Zhang et al., CVPR 2020).

Stage 1 trains a GAN prior on PUBLIC images only (``attacks/gan_prior.py``, WGAN-GP).
Stage 2 (Algorithm 1, Eqs. 3-5) searches the latent space for each attacked identity c:

    z* = argmin_z  L_prior(z) + lambda * L_id(z)
    L_prior(z) = -D(G(z))                    (Eq. 4, the critic's realism score)
    L_id(z)    = -log C_target(G(z))[c]      (Eq. 5, cross-entropy of the target)

with SGD + Nesterov momentum, z clipped to [-1, 1] after each step, and one random restart per
reconstruction (the paper's 5 restarts = ``samples_per_identity``). All identities and restarts
are optimised as one batch; the loss is summed over the batch so each latent's update does not
depend on how many run together. ``identity_loss`` is the hook LOMMA (``attacks/lomma.py``)
replaces.

The step size. The reference (``inversion`` in GMI's and KEDMI's code) runs SGD at lr 0.02 on
the loss *averaged* over its batch of B identities (B = 60: KEDMI's recovery.py attacks the 300
identities as 5 batches of 60, restarts one after another). The gradient of a mean is 1/B of the
gradient of the sum, so each latent moves by 0.02 / B times its own gradient: lr 0.02 on the
mean equals lr 0.02 / B on the sum used here. The paper suite sets that, 0.02 / 60 = 0.000333
(``attack_settings.gmi`` in benchmark/conf/suite/paper.yaml), for its 1,500+ steps; the YAML's
0.002 (the reference's step at B = 10) is the mini's, whose 100 steps need the larger step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks._image_objectives import freeze, search_in_budget
from attacks.gan_prior import GANPrior, UsesGANPrior
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack

GMI_CITATION = Citation(
    "The Secret Revealer: Generative Model-Inversion Attacks Against Deep Neural Networks",
    "Zhang et al.",
    "CVPR",
    2020,
    "https://arxiv.org/abs/1911.07135",
)


class IdentityLoss:
    """The identity term of a white-box image attack, per sample (the hook LOMMA replaces)."""

    def identity_loss(
        self, access, images: torch.Tensor, labels: torch.Tensor, target_prior
    ) -> torch.Tensor:
        return F.cross_entropy(access.model(images), labels, reduction="none")


class OwnTargetGAN:
    """Mixin of the attacks whose GAN is trained with the target (KEDMI, PLG-MI): their
    ``target_prior_class`` built at the task's shapes from the YAML's ``target_prior`` block."""

    cfg: dict
    target_prior_class: type

    def build_target_prior(self, task, target) -> dict:
        settings = self.cfg["target_prior"]
        # a prior class with two architectures declares the choice in its YAML block
        choice = (
            {"architecture": str(settings["architecture"])} if "architecture" in settings else {}
        )
        gan = self.target_prior_class(
            task.image_shape,
            task.num_classes,
            int(settings["z_dim"]),
            int(settings["width"]),
            **choice,
        )
        return {"target_prior": gan}

    @staticmethod
    def own_prior(target_prior: dict):
        """The attack's own target-derived prior (the ``target_prior`` block's artifact)."""
        return target_prior["target_prior"]


@register_attack(
    "gmi", modalities=("image",), access="whitebox", version="1.1", citation=GMI_CITATION
)
class GMI(IdentityLoss, UsesGANPrior, Attack):
    runs_on_gpu = True

    def run(
        self,
        access,
        victims,
        prior: GANPrior,
        budget: dict,
        generator: torch.Generator,
        target_prior=None,
    ):
        generator_net, critic = freeze(prior.generator), freeze(prior.discriminator)
        labels = victims.classes.to(self.device).repeat_interleave(victims.per_class)
        z = torch.randn(
            len(labels), prior.z_dim, generator=generator, device=self.device
        ).requires_grad_(True)
        optimizer = torch.optim.SGD(
            [z], lr=float(self.cfg["lr"]), momentum=float(self.cfg["momentum"]), nesterov=True
        )
        lam, clip = float(self.cfg["lambda_id"]), float(self.cfg["clip"])

        def loss() -> torch.Tensor:
            images = generator_net(z)
            return -critic(images) + lam * self.identity_loss(access, images, labels, target_prior)

        search_in_budget(
            self, [z], loss, optimizer, budget, after_step=lambda: z.clamp_(-clip, clip)
        )
        with torch.no_grad():
            return generator_net(z).view(
                len(victims.classes), victims.per_class, *victims.image_shape
            )
