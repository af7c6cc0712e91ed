"""LPIPS (Zhang et al., CVPR 2018) from each reconstruction to the nearest private training image
of its identity, averaged (lower: perceptually closer to a real private image).

The linear calibration layers ship inside the ``lpips`` package; its AlexNet backbone needs
torchvision's ImageNet weights (``alexnet-owt-7be5be79.pth`` in torch's hub cache, downloaded
when online, once per sweep by its launcher: metrics/_pretrained.py). Without them the metric is
unavailable with the reason, never a number.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from benchmark.downloads import dataset
from benchmark.methods import Unavailable
from benchmark.registry import Citation, register_metric
from metrics._pretrained import fetch_hub_weights, load_once, may_download

ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"
ALEXNET_URL = f"https://download.pytorch.org/models/{ALEXNET_WEIGHTS}"
# lpips 0.1.4 builds its backbone with torchvision's ``alexnet(pretrained=True)``, which
# torchvision (0.13 onwards) answers with these two deprecation warnings on every build.
TORCHVISION_PRETRAINED_WARNINGS = (
    r"The parameter 'pretrained' is deprecated",
    r"Arguments other than a weight enum or `None` for 'weights' are deprecated",
)


def weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS


def missing_weights() -> str:
    """Where to put the weights file, said when it is absent."""
    return (
        f"LPIPS' AlexNet weights {ALEXNET_WEIGHTS} are not in {weights_path().parent}/: download "
        f"{ALEXNET_URL} there, or run `invbench data lpips-alexnet` on an online machine"
    )


@dataset("lpips-alexnet")
def fetch_lpips_weights(data_root: Path, offline: bool) -> str:
    """LPIPS' AlexNet backbone weights (not a dataset, but fetched the same way)."""
    return fetch_hub_weights(
        "lpips-alexnet",
        weights_path(),
        ALEXNET_URL,
        missing_weights(),
        "download.pytorch.org",
        offline,
    )


def lpips_network():
    import lpips

    with warnings.catch_warnings():
        for message in TORCHVISION_PRETRAINED_WARNINGS:
            warnings.filterwarnings("ignore", message=message, category=UserWarning)
        return lpips.LPIPS(net="alex", verbose=False).eval()


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
    weights=weights_path,
    fetch_weights=fetch_lpips_weights,
)
def nearest_lpips(
    reconstructions: torch.Tensor,
    recon_labels: torch.Tensor,
    private: torch.Tensor,
    private_labels: torch.Tensor,
    offline: bool,
) -> float | Unavailable:
    path = weights_path()
    if not path.exists() and not may_download(offline):
        return Unavailable(missing_weights())
    try:
        model = load_once(path, lpips_network)
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
