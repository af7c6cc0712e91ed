"""A GAN image prior trained on public data only, shared by the GAN-based attacks.

Two architectures, chosen by the prior block's ``architecture`` (the suite's ``priors`` block
sets it for every attack alike):

- ``small`` (the mini suite): a DCGAN-style generator and critic sized for 16x16, 32x32 and 64x64
  images, 4x4 stride-2 (transposed) convolutions, ``width`` channels at the image side;
- ``reference`` (the paper suite): GMI's published generator and critic (Zhang et al. CVPR 2020,
  their code's ``Generator`` and ``DGWGAN``; KEDMI reuses the generator): z (100-d) -> linear to
  8 * dim channels at 4x4 (512 at the reference's dim 64) -> four 5x5 stride-2 transposed
  convolutions to 64x64 RGB and a sigmoid; the critic mirrors it with instance norm. Their key
  names are the published files' (``l1``, ``l2_5``, ``ls``), so GMI's ``celeba_G.tar`` and
  ``celeba_D.tar`` load into them (``prior.checkpoint``, benchmark/checkpoints.py) and replace
  the training.

Both are trained with the WGAN-GP objective (Gulrajani et al. NeurIPS 2017) as in GMI (Sec. 3.2):

    L_D = E[D(G(z))] - E[D(x)] + lambda_gp * E[(||grad_xhat D(xhat)||_2 - 1)^2]
    L_G = -E[D(G(z))]
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path

import torch
import torch.nn as nn

from benchmark.checkpoints import CheckpointLayout, load_checkpoint, register_layout
from benchmark.devices import module_device, to_device
from benchmark.progress import progress_bar

UPSAMPLINGS = {16: 2, 32: 3, 64: 4}  # stride-2 transposed convolutions from 4x4 to the size


class Generator(nn.Module):
    def __init__(self, z_dim: int, channels: int, size: int, width: int):
        super().__init__()
        if size not in UPSAMPLINGS:
            raise ValueError(
                f"the GAN prior supports 16x16, 32x32 and 64x64 images, not "
                f"{size}x{size}; set task.image_size to one of them"
            )
        self.z_dim = z_dim
        ups = UPSAMPLINGS[size]
        layers: list[nn.Module] = []
        features = width * 2 ** (ups - 1)
        self.project = nn.Sequential(
            nn.Linear(z_dim, features * 16, bias=False), nn.BatchNorm1d(features * 16), nn.ReLU()
        )
        for _ in range(ups - 1):
            layers += [
                nn.ConvTranspose2d(features, features // 2, 4, 2, 1, bias=False),
                nn.BatchNorm2d(features // 2),
                nn.ReLU(),
            ]
            features //= 2
        layers += [nn.ConvTranspose2d(features, channels, 4, 2, 1), nn.Sigmoid()]
        self.features = width * 2 ** (ups - 1)
        self.upsample = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(len(z), self.features, 4, 4))


def downsampling_layers(
    channels: int, size: int, width: int, spectral: bool = False
) -> tuple[list[nn.Module], int]:
    """DCGAN discriminator body: stride-2 4x4 convolutions (width doubling) down to 4x4.
    Returns the layers and the flattened feature count (the critics and discriminators of GMI,
    KEDMI and PLG-MI; PLG-MI's are spectrally normalised)."""
    layers: list[nn.Module] = []
    features, out, current = channels, width, size
    while current > 4:
        conv = nn.Conv2d(features, out, 4, 2, 1)
        layers += [nn.utils.spectral_norm(conv) if spectral else conv, nn.LeakyReLU(0.2)]
        features, out, current = out, out * 2, current // 2
    return layers, features * 16


class Critic(nn.Module):
    def __init__(self, channels: int, size: int, width: int):
        super().__init__()
        layers, features = downsampling_layers(channels, size, width)
        self.body = nn.Sequential(*layers, nn.Flatten(), nn.Linear(features, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images * 2 - 1).squeeze(1)


class ReferenceGenerator(nn.Module):
    """GMI's published generator (64x64 RGB): ``l1`` projects z to 8 * dim x 4 x 4, ``l2_5``
    upsamples with 5x5 stride-2 transposed convolutions to 64x64 in [0, 1]."""

    def __init__(self, z_dim: int = 100, dim: int = 64):
        super().__init__()

        def up(features: int, out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.ConvTranspose2d(features, out, 5, 2, padding=2, output_padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(),
            )

        self.z_dim = z_dim
        self.l1 = nn.Sequential(
            nn.Linear(z_dim, dim * 8 * 4 * 4, bias=False),
            nn.BatchNorm1d(dim * 8 * 4 * 4),
            nn.ReLU(),
        )
        self.l2_5 = nn.Sequential(
            up(dim * 8, dim * 4),
            up(dim * 4, dim * 2),
            up(dim * 2, dim),
            nn.ConvTranspose2d(dim, 3, 5, 2, padding=2, output_padding=1),
            nn.Sigmoid(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.l2_5(self.l1(z).view(len(z), -1, 4, 4))


def reference_down(features: int, out: int, kernel: int = 5, stride: int = 2, padding: int = 2):
    """The reference discriminators' conv -> instance norm (affine) -> LeakyReLU(0.2) block."""
    return nn.Sequential(
        nn.Conv2d(features, out, kernel, stride, padding),
        nn.InstanceNorm2d(out, affine=True),
        nn.LeakyReLU(0.2),
    )


class ReferenceCritic(nn.Module):
    """GMI's published WGAN-GP critic (``DGWGAN``) on 64x64 RGB images in [0, 1]."""

    def __init__(self, dim: int = 64):
        super().__init__()
        self.ls = nn.Sequential(
            nn.Conv2d(3, dim, 5, 2, 2),
            nn.LeakyReLU(0.2),
            reference_down(dim, dim * 2),
            reference_down(dim * 2, dim * 4),
            reference_down(dim * 4, dim * 8),
            nn.Conv2d(dim * 8, 1, 4),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.ls(images).view(-1)


ARCHITECTURES = ("small", "reference")


def check_architecture(architecture: str, image_shape: tuple[int, int, int]) -> None:
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown prior architecture {architecture!r}: use one of {ARCHITECTURES}")
    if architecture == "reference" and tuple(image_shape) != (3, 64, 64):
        raise ValueError(
            f"the reference GAN architecture is GMI's 64x64 RGB one; this task's images are "
            f"{tuple(image_shape)}: use architecture small (the mini suite's)"
        )


class GANPrior(nn.Module):
    version = "1"  # part of the cache key: bump when the architecture or training changes

    def __init__(
        self, image_shape: tuple[int, int, int], z_dim: int, width: int, architecture: str = "small"
    ):
        super().__init__()
        check_architecture(architecture, image_shape)
        channels, size, _ = image_shape
        if architecture == "reference":
            self.generator = ReferenceGenerator(z_dim, width)
            self.discriminator = ReferenceCritic(width)
        else:
            self.generator = Generator(z_dim, channels, size, width)
            self.discriminator = Critic(channels, size, width)
        self.z_dim = z_dim


class TargetGAN(nn.Module):
    """A GAN trained with the target (KEDMI's, PLG-MI's): K classes and the two architectures.
    Subclasses build the generator and discriminator of each architecture."""

    def __init__(
        self,
        image_shape: tuple[int, int, int],
        num_classes: int,
        z_dim: int,
        width: int,
        architecture: str = "small",
    ):
        super().__init__()
        check_architecture(architecture, image_shape)
        self.generator, self.discriminator = self.build(
            architecture, image_shape, num_classes, z_dim, width
        )
        self.z_dim = z_dim

    @abstractmethod
    def build(
        self,
        architecture: str,
        image_shape: tuple[int, int, int],
        num_classes: int,
        z_dim: int,
        width: int,
    ) -> tuple[nn.Module, nn.Module]:
        """The (generator, discriminator) of ``architecture``."""


def load_gan_checkpoints(prior: nn.Module, spec: dict) -> dict:
    """A published GAN (``{generator: <checkpoint>, discriminator: <checkpoint>}``, paths
    absolute: the runner resolves them against the data root) loaded instead of trained."""
    if set(spec) != {"generator", "discriminator"}:
        raise ValueError(
            f"a prior checkpoint names both files, {{generator: ..., discriminator: ...}}; got "
            f"{sorted(spec)}"
        )
    meta = {"trained": False}
    for part in ("generator", "discriminator"):
        loaded = load_checkpoint(getattr(prior, part), spec[part], Path("/"))
        meta.update({f"{part}_{k}": v for k, v in loaded.items()})
    prior.eval()
    return meta


class UsesGANPrior:
    """Mixin for attacks that draw on the shared public GAN prior (the YAML's ``prior`` block)."""

    cfg: dict

    def build_prior(self, task) -> GANPrior:
        settings = self.cfg["prior"]
        return GANPrior(
            task.image_shape,
            int(settings["z_dim"]),
            int(settings["width"]),
            str(settings.get("architecture", "small")),
        )

    def train_prior(self, prior: GANPrior, public, progress: bool) -> dict:
        settings = self.cfg["prior"]
        if settings.get("checkpoint"):
            return load_gan_checkpoints(prior, settings["checkpoint"])
        return train_wgan_gp(
            prior,
            public.images,
            steps=int(settings["steps"]),
            batch_size=int(settings["batch_size"]),
            n_critic=int(settings["n_critic"]),
            lr=float(settings["lr"]),
            gp_weight=float(settings["gp_weight"]),
            progress=progress,
        )


def gradient_penalty(critic: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    mix = torch.rand(len(real), 1, 1, 1, device=real.device)
    interpolated = (mix * real + (1 - mix) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(interpolated).sum(), interpolated, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def train_wgan_gp(
    prior: GANPrior,
    images: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    n_critic: int,
    lr: float,
    gp_weight: float,
    progress: bool,
) -> dict:
    """Train ``prior`` on ``images`` (public data) for ``steps`` generator updates, on the
    prior's device (the images are copied there once)."""
    device = module_device(prior)
    images = to_device(images, device)
    generator, critic = prior.generator, prior.discriminator
    opt_g = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.9))
    generator.train()
    critic.train()
    with progress_bar(steps, "GAN prior (public data)", progress) as bar:
        for _ in range(steps):
            for _ in range(n_critic):
                real = images[torch.randint(len(images), (batch_size,), device=device)]
                with torch.no_grad():
                    fake = generator(torch.randn(batch_size, prior.z_dim, device=device))
                critic_loss = (
                    critic(fake).mean()
                    - critic(real).mean()
                    + gp_weight * gradient_penalty(critic, real, fake)
                )
                opt_d.zero_grad(set_to_none=True)
                critic_loss.backward()
                opt_d.step()
            generator_loss = -critic(
                generator(torch.randn(batch_size, prior.z_dim, device=device))
            ).mean()
            opt_g.zero_grad(set_to_none=True)
            generator_loss.backward()
            opt_g.step()
            bar.update()
    prior.eval()
    return {
        "critic_loss": critic_loss.item(),
        "generator_loss": generator_loss.item(),
        "public_images": len(images),
    }


GMI_SOURCE = "https://github.com/AI-secure/GMI-Attack (README: the CelebA GAN, celeba_G/D.tar)"
register_layout(
    CheckpointLayout(
        "gmi-generator",
        "GMI's CelebA generator (z 100, 64x64 RGB), the reference prior architecture",
        "gmi/celeba_G.tar",
        GMI_SOURCE,
        lambda key: key,
        example_key="module.l1.0.weight",
    )
)
register_layout(
    CheckpointLayout(
        "gmi-discriminator",
        "GMI's CelebA WGAN-GP critic (DGWGAN), the reference prior architecture",
        "gmi/celeba_D.tar",
        GMI_SOURCE,
        lambda key: key,
        example_key="module.ls.0.weight",
    )
)
