"""LPIPS (Zhang et al., CVPR 2018) from each reconstruction to the nearest private training image
of its identity, averaged (lower: perceptually closer to a real private image).

The linear calibration layers ship inside the ``lpips`` package; its AlexNet backbone needs
torchvision's ImageNet weights (``alexnet-owt-7be5be79.pth`` in torch's hub cache, downloaded
when online). Without them the metric is unavailable with the reason, never a number.
"""

from __future__ import annotations

from pathlib import Path

import torch

from benchmark.methods import Unavailable
from benchmark.registry import Citation, register_metric
from metrics._pretrained import load_once

ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"


@register_metric(
    "lpips",
    higher_is_better=False,
    modalities=("image",),
    citation=Citation(
        "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric",
        "Zhang et al.",
        "CVPR",
        2018,
        "https://arxiv.org/abs/1801.03924",
    ),
)
def nearest_lpips(
    reconstructions: torch.Tensor,
    recon_labels: torch.Tensor,
    private: torch.Tensor,
    private_labels: torch.Tensor,
    offline: bool,
) -> float | Unavailable:
    path = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    if not path.exists() and offline:
        return Unavailable(
            f"LPIPS needs AlexNet's ImageNet weights {ALEXNET_WEIGHTS} in {path.parent} (offline)"
        )
    try:
        import lpips

        model = load_once(path, lambda: lpips.LPIPS(net="alex", verbose=False).eval())
    except Exception as error:
        return Unavailable(f"LPIPS backbone could not be loaded: {error}")

    def prepare(x: torch.Tensor) -> torch.Tensor:
        x = x.float().clamp(0, 1) * 2 - 1
        return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x

    nearest = []
    with torch.no_grad():
        for recon, label in zip(reconstructions, recon_labels):
            candidates = prepare(private[private_labels == label])
            distances = model(prepare(recon[None]).expand(len(candidates), -1, -1, -1), candidates)
            nearest.append(distances.min())
    return torch.stack(nearest).mean().item()
