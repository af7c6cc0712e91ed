"""DeepInversion (Yin et al., CVPR 2020): images synthesised in pixel space from the target's
batch-norm statistics, no GAN and no public data.

    min_x  CE(T(x), y) + alpha_f * R_feature(x) + alpha_tv * R_TV(x) + alpha_l2 * ||x||^2

R_feature (Eq. 4) = sum_l ||mu_l(x) - mu_l^BN||_2 + ||sigma_l^2(x) - sigma_l^2,BN||_2 over every
BatchNorm2d layer l of the target (the running statistics of the PRIVATE training data); R_TV is
the total variation prior of DeepDream (Sec. 3.1). Random jitter (shifts) and flips are applied
each step, Adam, pixels kept in [0, 1]. A target with no BatchNorm2d layer (e.g. DP-SGD's
group-norm model) leaves R_feature empty: the attack then runs as its priors-only ablation, and
``feature_statistics_layers`` in the warning log says so.
"""

from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._image_objectives import search_in_budget
from benchmark.devices import module_device
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack

log = logging.getLogger("invbench")


class BatchNormStatistics:
    """Forward hooks that compare each BatchNorm2d input's batch statistics with its running
    statistics (Eq. 4)."""

    def __init__(self, model: nn.Module):
        self.device = module_device(model)
        self.layers = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        self.terms: list[torch.Tensor] = []
        self.handles = [layer.register_forward_hook(self._hook) for layer in self.layers]

    def _hook(self, layer: nn.BatchNorm2d, inputs: tuple, output: torch.Tensor) -> None:
        x = inputs[0]
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        self.terms.append(
            torch.norm(mean - layer.running_mean, 2) + torch.norm(var - layer.running_var, 2)
        )

    def take(self) -> torch.Tensor:
        total = torch.stack(self.terms).sum() if self.terms else torch.zeros((), device=self.device)
        self.terms = []
        return total

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Per image: mean squared difference of neighbouring pixels (DeepInversion's R_TV, l2)."""
    dx = (images[..., :, 1:] - images[..., :, :-1]).pow(2).flatten(1).mean(1)
    dy = (images[..., 1:, :] - images[..., :-1, :]).pow(2).flatten(1).mean(1)
    return dx + dy


@register_attack(
    "deepinversion",
    modalities=("image",),
    access="whitebox",
    version="1.0",
    citation=Citation(
        "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion",
        "Yin et al.",
        "CVPR",
        2020,
        "https://arxiv.org/abs/1912.08795",
    ),
)
class DeepInversion(Attack):
    runs_on_gpu = True

    def run(self, access, victims, prior, budget: dict, generator: torch.Generator):
        labels = victims.classes.to(self.device).repeat_interleave(victims.per_class)
        x = torch.rand(
            len(labels), *victims.image_shape, generator=generator, device=self.device
        ).requires_grad_(True)
        # the jitter's shifts and flips are Python decisions: drawn on the host, they cost the
        # device no synchronisation (on the CPU it is the attack's own generator, as always)
        host = (
            generator
            if generator.device.type == "cpu"
            else torch.Generator().manual_seed(generator.initial_seed())
        )
        optimizer = torch.optim.Adam([x], lr=float(self.cfg["lr"]), betas=(0.5, 0.9))
        statistics = BatchNormStatistics(access.model)
        if not statistics.layers:
            log.warning(
                "deepinversion: the target has no BatchNorm2d layer; "
                "feature_statistics_layers=0, R_feature is empty"
            )
        jitter = max(1, round(float(self.cfg["jitter"]) * victims.image_shape[-1]))
        cfg = {k: float(self.cfg[k]) for k in ("r_feature", "tv", "l2")}

        def loss() -> torch.Tensor:
            dx, dy = (int(v) for v in torch.randint(-jitter, jitter + 1, (2,), generator=host))
            images = torch.roll(x, shifts=(dx, dy), dims=(2, 3))
            if torch.rand(1, generator=host).item() < 0.5:
                images = images.flip(3)
            per_sample = (
                F.cross_entropy(access.model(images), labels, reduction="none")
                + cfg["tv"] * total_variation(images)
                + cfg["l2"] * images.pow(2).flatten(1).mean(1)
            )
            # R_feature is one number for the batch; adding it to every sample makes the summed
            # loss n * (mean CE + alpha_f R_feature + ...), the paper's objective times n
            return per_sample + cfg["r_feature"] * statistics.take()

        try:
            search_in_budget(self, [x], loss, optimizer, budget, after_step=lambda: x.clamp_(0, 1))
        finally:
            statistics.close()
        return x.detach().view(len(victims.classes), victims.per_class, *victims.image_shape)
