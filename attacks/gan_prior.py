"""A GAN image prior trained on public data only, shared by the GAN-based attacks.

DCGAN-style generator and critic sized for small images (16x16, 32x32 and 64x64), trained with the
WGAN-GP objective (Gulrajani et al. NeurIPS 2017) as in GMI (Zhang et al. CVPR 2020, Sec. 3.2):

    L_D = E[D(G(z))] - E[D(x)] + lambda_gp * E[(||grad_xhat D(xhat)||_2 - 1)^2]
    L_G = -E[D(G(z))]
"""

from __future__ import annotations

import torch
import torch.nn as nn

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


class GANPrior(nn.Module):
    version = "1"  # part of the cache key: bump when the architecture or training changes

    def __init__(self, image_shape: tuple[int, int, int], z_dim: int, width: int):
        super().__init__()
        channels, size, _ = image_shape
        self.generator = Generator(z_dim, channels, size, width)
        self.discriminator = Critic(channels, size, width)
        self.z_dim = z_dim


class UsesGANPrior:
    """Mixin for attacks that draw on the shared public GAN prior (the YAML's ``prior`` block)."""

    cfg: dict

    def build_prior(self, task) -> GANPrior:
        settings = self.cfg["prior"]
        return GANPrior(task.image_shape, int(settings["z_dim"]), int(settings["width"]))

    def train_prior(self, prior: GANPrior, public, progress: bool) -> dict:
        settings = self.cfg["prior"]
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
