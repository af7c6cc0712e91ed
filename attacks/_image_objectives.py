"""Identity losses, augmentations and the latent-search loop shared by the image attacks."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from benchmark.devices import autocast
from benchmark.progress import progress_bar


def max_margin_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """PLG-MI's max-margin identity loss (Yuan et al. AAAI 2023, Eq. 6), per sample:
    L = -l_y(x) + max_{j != y} l_j(x)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf")).amax(dim=1)
    return others - true


def poincare_loss(logits: torch.Tensor, labels: torch.Tensor, xi: float = 1e-4) -> torch.Tensor:
    """PPA's Poincare identity loss (Struppek et al. ICML 2022, Eq. 3), per sample:
    d(u, v) = arccosh(1 + 2 ||u - v||^2 / ((1 - ||u||^2)(1 - ||v||^2))), with u the logits
    divided by their L1 norm and v the one-hot label shrunk to norm 1 - xi."""
    u = logits / logits.abs().sum(dim=1, keepdim=True)
    v = F.one_hot(labels, logits.shape[1]).float() * (1 - xi)
    numerator = 2 * (u - v).pow(2).sum(dim=1)
    denominator = (1 - u.pow(2).sum(dim=1)) * (1 - v.pow(2).sum(dim=1))
    return torch.acosh(1 + numerator / denominator)


def random_augment(
    images: torch.Tensor,
    min_scale: float = 0.8,
    flip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """A differentiable random resized crop (area in [min_scale, 1]) and horizontal flip per
    image, through one affine grid (PLG-MI's and PPA's attack-time augmentations)."""
    n, device = len(images), images.device
    scale = torch.empty(n, device=device).uniform_(min_scale, 1.0, generator=generator).sqrt()
    shift = (torch.rand(n, 2, generator=generator, device=device) * 2 - 1) * (1 - scale)[:, None]
    sign = (
        torch.where(torch.rand(n, generator=generator, device=device) < 0.5, -1.0, 1.0)
        if flip
        else torch.ones(n, device=device)
    )
    theta = torch.zeros(n, 2, 3, device=device)
    theta[:, 0, 0] = scale * sign
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(
        images, grid, mode="bilinear", padding_mode="reflection", align_corners=False
    )


def search_latents(
    parameters: list[torch.Tensor],
    loss_fn: Callable[[], torch.Tensor],
    *,
    steps: int,
    optimizer: torch.optim.Optimizer,
    desc: str,
    progress: bool,
    after_step: Callable[[], None] | None = None,
    amp: bool = False,
) -> None:
    """``steps`` updates of ``optimizer`` on the SUMMED per-sample loss, so that batching
    identities and restarts together leaves each latent's trajectory unchanged.

    With ``amp`` the loss's forward passes run under bfloat16 autocast (the latents and the
    update stay float32). Nothing in the loop reads a value back to the host, so on a GPU the
    steps queue up without synchronising (``tests/test_devices.py`` checks it)."""
    device = parameters[0].device
    with progress_bar(steps, desc, progress) as bar:
        for _ in range(steps):
            with autocast(device, amp):
                loss = loss_fn().float().sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                with torch.no_grad():
                    after_step()
            bar.update()
    for parameter in parameters:
        parameter.requires_grad_(False)


def search_in_budget(
    attack,
    parameters: list[torch.Tensor],
    loss_fn: Callable[[], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    budget,
    after_step: Callable[[], None] | None = None,
) -> None:
    """:func:`search_latents` for ``attack`` in the cell: the suite's ``budget.steps`` (alike
    for every white-box attack of the task), the attack's name on the progress bar, the cell's
    progress and autocast settings."""
    search_latents(
        parameters,
        loss_fn,
        steps=int(budget["steps"]),
        optimizer=optimizer,
        desc=str(attack.cfg.get("name", type(attack).__name__.lower())),
        progress=attack.progress,
        amp=attack.amp,
        after_step=after_step,
    )


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    module.eval()
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    return module
