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

Two cGAN architectures (the ``target_prior`` block's ``architecture``, set by the suite's
``priors``): ``small``, the mini's DCGAN on [z, E(y)] with a spectrally normalised projection
discriminator, and ``reference``, the published SNGAN (Miyato & Koyama 2018, as PLG-MI's code
builds it at 64x64): z (128-d here by the suite's z_dim) -> 16 * width x 4 x 4, four residual
up-blocks with categorical conditional batch norm (a per-class gain and bias) to width x 64 x
64, batch norm, ReLU, 1x1 conv and tanh; the discriminator an optimised block and four residual
down-blocks to 16 * width channels, spectrally normalised, summed over space, then
psi(phi) + <E(y), phi>.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._image_objectives import freeze, max_margin_loss, random_augment, search_in_budget
from attacks.gan_prior import Generator, TargetGAN, downsampling_layers
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


class CategoricalBatchNorm(nn.Module):
    """Batch norm without its own affine; the gain and bias are embeddings of the class."""

    def __init__(self, num_classes: int, features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(features, affine=False)
        self.gain = nn.Embedding(num_classes, features)
        self.bias = nn.Embedding(num_classes, features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (
            self.gain(labels)[:, :, None, None] * self.norm(x) + self.bias(labels)[:, :, None, None]
        )


def upsample(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class UpBlock(nn.Module):
    """The SNGAN generator's residual block: cBN, ReLU, x2 up, 3x3 conv, cBN, ReLU, 3x3 conv;
    the shortcut upsampled through a 1x1 conv."""

    def __init__(self, features: int, out: int, num_classes: int):
        super().__init__()
        self.b1, self.b2 = (
            CategoricalBatchNorm(num_classes, features),
            CategoricalBatchNorm(num_classes, out),
        )
        self.c1, self.c2 = nn.Conv2d(features, out, 3, 1, 1), nn.Conv2d(out, out, 3, 1, 1)
        self.c_sc = nn.Conv2d(features, out, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.c1(upsample(F.relu(self.b1(x, labels))))
        return self.c_sc(upsample(x)) + self.c2(F.relu(self.b2(h, labels)))


class ResNetConditionalGenerator(nn.Module):
    def __init__(self, z_dim: int, num_classes: int, width: int = 64):
        super().__init__()
        self.width = width
        self.project = nn.Linear(z_dim, 16 * width * 4 * 4)
        widths = [16 * width, 8 * width, 4 * width, 2 * width, width]
        self.blocks = nn.ModuleList(UpBlock(a, b, num_classes) for a, b in zip(widths, widths[1:]))
        self.out = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, 3, 1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.project(z).view(len(z), 16 * self.width, 4, 4)
        for block in self.blocks:
            h = block(h, labels)
        return (self.out(h) + 1) / 2  # the harness's images are in [0, 1]


class DownBlock(nn.Module):
    """The SNGAN discriminator's residual block (``first``: the optimised block, no ReLU before
    its first conv, pooled shortcut then 1x1 conv); every conv spectrally normalised."""

    def __init__(self, features: int, out: int, first: bool = False):
        super().__init__()
        sn = nn.utils.spectral_norm
        self.first = first
        self.c1, self.c2 = sn(nn.Conv2d(features, out, 3, 1, 1)), sn(nn.Conv2d(out, out, 3, 1, 1))
        self.c_sc = sn(nn.Conv2d(features, out, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.first:
            return self.c_sc(F.avg_pool2d(x, 2)) + F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2)
        residual = self.c2(F.relu(self.c1(F.relu(x))))
        return F.avg_pool2d(self.c_sc(x), 2) + F.avg_pool2d(residual, 2)


class ResNetProjectionDiscriminator(nn.Module):
    def __init__(self, num_classes: int, width: int = 64):
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width, 16 * width]
        self.blocks = nn.Sequential(
            DownBlock(3, width, first=True), *(DownBlock(a, b) for a, b in zip(widths, widths[1:]))
        )
        self.psi = nn.utils.spectral_norm(nn.Linear(16 * width, 1))
        self.embed = nn.utils.spectral_norm(nn.Embedding(num_classes, 16 * width))

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phi = F.relu(self.blocks(images * 2 - 1)).sum(dim=(2, 3))
        return self.psi(phi).squeeze(1) + (self.embed(labels) * phi).sum(dim=1)


class PLGMIPrior(TargetGAN):
    version = "2"  # 2: pseudo-labels from the target in eval mode

    def build(self, architecture, image_shape, num_classes, z_dim, width):
        if architecture == "reference":
            return (
                ResNetConditionalGenerator(z_dim, num_classes, width),
                ResNetProjectionDiscriminator(num_classes, width),
            )
        channels, size, _ = image_shape
        return (
            ConditionalGenerator(z_dim, num_classes, channels, size, width),
            ProjectionDiscriminator(channels, size, width, num_classes),
        )


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
