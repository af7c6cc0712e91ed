"""LOKT: label-only model inversion via knowledge transfer (Nguyen et al., NeurIPS 2023).

The target releases labels only. LOKT transfers its knowledge into surrogate models the
attacker owns, then runs a white-box attack on the surrogates (Sec. 3):

1. Label transfer: images generated from the public prior, G(z), are labelled by the target
   (one query each): D_T = {(G(z), argmax T(G(z)))}.
2. Surrogates: ``surrogates`` classifiers S_k, trained on D_T with class-balanced cross-entropy
   (generated samples fall unevenly on the target's classes). The paper trains them on samples
   of its target-assisted conditional GAN (T-ACGAN), whose generator learns to produce every
   class; here the samples come from the suite's shared unconditional prior, and balancing the
   loss stands in for the conditional generator's balanced sampling.
3. White-box attack on the ensemble mean of the surrogates' logits: GMI's latent search
   (``attacks/gmi.py``, Eqs. 3-5) with the surrogates in place of the target; this step makes
   no query.

The surrogate architecture is a small CNN that is neither the target's nor the evaluation
model's. Queries: ``label_fraction`` of the suite's budget labels the transfer set; the
white-box step queries nothing.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._black_box import budget_of, released_for_images, render, sample_latents
from attacks.gan_prior import GANPrior
from attacks.gmi import GMI
from benchmark.registry import Citation, register_attack
from tasks.training import fit_classifier


def surrogate_cnn(channels: int, classes: int, width: int) -> nn.Module:
    """Three conv-BN-ReLU blocks (two of them downsampling), global pooling, a linear head."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1),
        nn.BatchNorm2d(4 * width),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, classes),
    )


class Ensemble(nn.Module):
    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(images) for member in self.members]).mean(dim=0)


class SurrogateAccess:
    """What GMI's search reads (``access.model``): the surrogates, never the target."""

    def __init__(self, model: nn.Module):
        self.model = model


@register_attack(
    "lokt",
    modalities=("image",),
    access="label",
    version="1.0",
    citation=Citation(
        "Label-Only Model Inversion Attacks via Knowledge Transfer",
        "Nguyen et al.",
        "NeurIPS",
        2023,
        "https://arxiv.org/abs/2310.19342",
    ),
)
class LOKT(GMI):
    runs_on_gpu = False  # label-only: the oracle's releases and the surrogates stay on the host

    def run(
        self,
        access,
        victims,
        prior: GANPrior,
        budget: dict,
        generator: torch.Generator,
        target_prior=None,
    ):
        cfg = self.cfg
        net = prior.generator.eval()
        count = int(budget_of(access) * float(cfg["label_fraction"]))
        latents = sample_latents(count, prior.z_dim, float(cfg["clip"]), generator)
        images = render(net, latents)  # the transfer set, rendered once: labelled, then learnt
        labels = released_for_images(access, images).argmax(dim=1)
        seen = torch.bincount(labels, minlength=victims.num_classes).float()
        balance = torch.where(
            seen > 0,
            len(labels) / (victims.num_classes * seen.clamp_min(1)),
            torch.zeros_like(seen),
        )

        def balanced(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(model(x), y, weight=balance)

        members = []
        for _ in range(int(cfg["surrogates"])):
            member = surrogate_cnn(
                victims.image_shape[0], victims.num_classes, int(cfg["surrogate_width"])
            )
            fit_classifier(
                member,
                images,
                labels,
                epochs=int(cfg["surrogate_epochs"]),
                lr=float(cfg["surrogate_lr"]),
                batch_size=int(cfg["surrogate_batch"]),
                step_loss=balanced,
                desc="LOKT surrogate",
                progress=self.progress,
            )
            members.append(member.eval())
        ensemble = Ensemble(members)
        for parameter in ensemble.parameters():
            parameter.requires_grad_(False)
        return super().run(SurrogateAccess(ensemble), victims, prior, budget, generator)
