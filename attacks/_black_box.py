"""What the black-box and label-only image attacks share: latents of the public GAN prior
rendered and sent to the released model (every image is one counted query), the attacked
identity's confidence read from what comes back, and the split of one query budget.

The attacks never see the target: ``access`` is a :class:`benchmark.access.Oracle` (or a test's
stand-in) mapping images to released outputs; with ``label`` access those are one-hot argmaxes.
"""

from __future__ import annotations

import torch

from benchmark.errors import InvbenchError

CHUNK = 2048  # images rendered and sent per call (memory, not semantics)
FLOOR = 1e-12  # confidences below this (zeroed by top-k, rounding) read as log(FLOOR)


@torch.no_grad()
def render(generator_net: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """G(z) in chunks, without gradients."""
    return (
        torch.cat([generator_net(part) for part in z.split(CHUNK)])
        if len(z)
        else generator_net(z[:1])[:0]
    )


@torch.no_grad()
def released(access, generator_net: torch.nn.Module, z: torch.Tensor) -> torch.Tensor:
    """The released outputs [N, K] for the images of latents ``z`` [N, d]: N queries."""
    return torch.cat([access(generator_net(part)) for part in z.split(CHUNK)])


@torch.no_grad()
def released_for_images(access, images: torch.Tensor) -> torch.Tensor:
    """The released outputs for images the attack has already rendered: one query each."""
    return torch.cat([access(part) for part in images.split(CHUNK)])


def log_confidence(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log p_y of each released vector for its label (MIRROR's and C2FMI's fitness)."""
    return probs.gather(1, labels[:, None]).squeeze(1).clamp_min(FLOOR).log()


def budget_of(access) -> int:
    """The queries this cell may still spend; an attack plans its whole search with it."""
    remaining = access.remaining() if hasattr(access, "remaining") else None
    if remaining is None:
        raise InvbenchError(
            "black-box attacks plan their search with the suite's query "
            "budget; set suite.budgets.<task>.queries"
        )
    return int(remaining)


def sample_latents(count: int, z_dim: int, clip: float, generator: torch.Generator) -> torch.Tensor:
    """z ~ N(0, I) clipped to [-clip, clip] (GMI's latent box, shared by the GAN attacks)."""
    return torch.randn(count, z_dim, generator=generator).clamp(-clip, clip)


def chain_labels(victims) -> torch.Tensor:
    """One search (chain) per reconstruction: identity c repeated ``per_class`` times."""
    return victims.classes.repeat_interleave(victims.per_class)


def search_setup(access, victims, prior) -> tuple[torch.nn.Module, torch.Tensor, int]:
    """What every search starts from: the prior's generator (eval mode), the identity of each
    search, and the queries it may spend."""
    return prior.generator.eval(), chain_labels(victims), budget_of(access)


def as_reconstructions(images: torch.Tensor, victims) -> torch.Tensor:
    return images.view(len(victims.classes), victims.per_class, *victims.image_shape)
