"""PLG-MI: pseudo label-guided model inversion with a conditional GAN (Yuan et al., AAAI 2023).

1. Top-n selection (Sec. 3.2): the target labels the PUBLIC images; for each class k the n
   public images with the highest p_T(k|x) form its pseudo-labelled set.
2. Conditional GAN (Sec. 3.3, Eqs. 3-5): G(z, y) and a projection discriminator
   D(x, y) = psi(phi(x)) + <E(y), phi(x)> (Miyato & Koyama 2018) trained with the hinge loss on
   the pseudo-labelled set, the generator also pushed toward its class by the target:

       L_D = E[max(0, 1 - D(x, y))] + E[max(0, 1 + D(G(z, y), y))]
       L_G = -E[D(G(z, y), y)] + alpha * E[L_mm(T(A(G(z, y))), y)]

   with A random augmentations and the max-margin loss L_mm = -l_y + max_{j != y} l_j (Eq. 6).
3. Attack (Sec. 3.4, Eq. 7): for each identity y, latents z minimise L_mm(T(A(G(z, y))), y)
   with Adam; the reconstructions are G(z*, y). ``identity_loss`` is the hook LOMMA replaces.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._image_objectives import freeze, max_margin_loss, random_augment, search_in_budget
from attacks.gan_prior import Generator, downsampling_layers
from attacks.gmi import IdentityLoss, OwnTargetGAN
from benchmark.devices import module_device, to_device
from benchmark.methods import Attack
from benchmark.progress import progress_bar
from benchmark.registry import Citation, register_attack
from tasks.training import predict_in_batches


class ConditionalGenerator(nn.Module):
    """G(z, y): the DCGAN generator on [z, E(y)] (a learned class embedding)."""

    def __init__(self, z_dim: int, num_classes: int, channels: int, size: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(num_classes, z_dim)
        self.net = Generator(2 * z_dim, channels, size, width)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, self.embed(labels)], dim=1))


class ProjectionDiscriminator(nn.Module):
    def __init__(self, channels: int, size: int, width: int, num_classes: int):
        super().__init__()
        layers, features = downsampling_layers(channels, size, width, spectral=True)
        self.body = nn.Sequential(*layers, nn.Flatten())
        self.psi = nn.utils.spectral_norm(nn.Linear(features, 1))
        self.embed = nn.utils.spectral_norm(nn.Embedding(num_classes, features))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phi = self.body(images * 2 - 1)
        return self.psi(phi).squeeze(1) + (self.embed(labels) * phi).sum(dim=1)


class PLGMIPrior(nn.Module):
    version = "2"  # 2: pseudo-labels from the target in eval mode

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, z_dim: int, width: int):
        super().__init__()
        channels, size, _ = image_shape
        self.generator = ConditionalGenerator(z_dim, num_classes, channels, size, width)
        self.discriminator = ProjectionDiscriminator(channels, size, width, num_classes)
        self.z_dim = z_dim


def top_n_pseudo_labels(probs: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the n public images most confidently of each class, and those classes."""
    n = min(n, len(probs))
    index = probs.topk(n, dim=0).indices  # [n, K]
    labels = torch.arange(probs.shape[1], device=probs.device).repeat(n)
    return index.flatten(), labels


@register_attack(
    "plgmi",
    modalities=("image",),
    access="whitebox",
    version="1.1",
    citation=Citation(
        "Pseudo Label-Guided Model Inversion Attack via Conditional Generative Adversarial Network",
        "Yuan et al.",
        "AAAI",
        2023,
        "https://arxiv.org/abs/2302.09814",
    ),
)
class PLGMI(OwnTargetGAN, IdentityLoss, Attack):
    runs_on_gpu = True
    target_prior_class = PLGMIPrior

    def identity_loss(self, access, images, labels, target_prior):
        return max_margin_loss(access.model(images), labels)

    def train_target_prior(
        self, model: PLGMIPrior, public, target, teacher, progress: bool
    ) -> dict:
        settings = self.cfg["target_prior"]
        freeze(target)
        device = module_device(model)
        probs = predict_in_batches(teacher, public.images, device=device)
        index, pseudo = top_n_pseudo_labels(probs, int(settings["top_n"]))
        images = to_device(public.images, device)[index]
        generator, discriminator = model.generator, model.discriminator
        lr, alpha, batch = (
            float(settings["lr"]),
            float(settings["alpha"]),
            int(settings["batch_size"]),
        )
        opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.0, 0.9))
        opt_d = torch.optim.Adam(discriminator.parameters(), lr=lr, betas=(0.0, 0.9))
        num_classes = probs.shape[1]
        generator.train()
        with progress_bar(
            int(settings["steps"]), "PLG-MI cGAN (pseudo-labelled public data)", progress
        ) as bar:
            for _ in range(int(settings["steps"])):
                pick = torch.randint(len(images), (batch,), device=device)
                real, real_y = images[pick], pseudo[pick]
                fake_y = torch.randint(num_classes, (batch,), device=device)
                with torch.no_grad():
                    fake = generator(torch.randn(batch, model.z_dim, device=device), fake_y)
                d_loss = (
                    F.relu(1 - discriminator(real, real_y)).mean()
                    + F.relu(1 + discriminator(fake, fake_y)).mean()
                )
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                fake = generator(torch.randn(batch, model.z_dim, device=device), fake_y)
                inversion = max_margin_loss(target(random_augment(fake)), fake_y).mean()
                g_loss = -discriminator(fake, fake_y).mean() + alpha * inversion
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                bar.update()
        model.eval()
        return {
            "discriminator_loss": d_loss.item(),
            "generator_loss": g_loss.item(),
            "inversion_loss": inversion.item(),
            "pseudo_labelled_images": len(images),
        }

    def run(
        self, access, victims, prior, budget: dict, generator: torch.Generator, target_prior=None
    ):
        gan = self.own_prior(target_prior)
        generator_net = freeze(gan.generator)
        labels = victims.classes.to(self.device).repeat_interleave(victims.per_class)
        z = torch.randn(
            len(labels), gan.z_dim, generator=generator, device=self.device
        ).requires_grad_(True)
        optimizer = torch.optim.Adam([z], lr=float(self.cfg["lr"]))

        def loss() -> torch.Tensor:
            images = generator_net(z, labels)
            return sum(
                self.identity_loss(
                    access, random_augment(images, generator=generator), labels, target_prior
                )
                for _ in range(int(self.cfg["augmentations"]))
            )

        search_in_budget(self, [z], loss, optimizer, budget)
        with torch.no_grad():
            return generator_net(z, labels).view(
                len(victims.classes), victims.per_class, *victims.image_shape
            )
