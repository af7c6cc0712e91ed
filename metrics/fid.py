"""Frechet Inception Distance (Heusel et al., NeurIPS 2017) between reconstructions and the
private training images of the attacked identities (the MI literature's FID, e.g. KEDMI Sec. 4).

    FID = ||mu_r - mu_p||^2 + tr(S_r + S_p - 2 (S_r S_p)^(1/2))

over the 2048-d pool3 features of the FID Inception-v3 (TF weights ported by pytorch-fid, file
``pt_inception-2015-12-05-6726825d.pth``, the same network torchmetrics uses). The weights come
from torch's hub cache (``$TORCH_HOME/hub/checkpoints``) or, online, are downloaded there. Without
them the metric is unavailable with the reason in the record: never 0, never random weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from benchmark.downloads import dataset
from benchmark.methods import Unavailable
from benchmark.registry import Citation, register_metric
from metrics._pretrained import fetch_hub_weights, load_once, may_download

FID_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = (
    f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS}"
)
FID_CITATION = Citation(
    "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium",
    "Heusel et al.",
    "NeurIPS",
    2017,
    "https://arxiv.org/abs/1706.08500",
)


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """The Frechet distance between N(mu1, sigma1) and N(mu2, sigma2)."""
    from scipy import linalg

    diff = mu1 - mu2
    with warnings.catch_warnings():
        # Fewer images than the 2048 features (every cell of the suites) make both covariances
        # singular, and scipy says so on each call: expected, and handled below when it matters
        warnings.filterwarnings("ignore", "Matrix is singular", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product: regularise as pytorch-fid does
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def weights_path() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / FID_WEIGHTS


def fid_inception():
    from pytorch_fid.inception import InceptionV3

    return InceptionV3(
        [InceptionV3.BLOCK_INDEX_BY_DIM[2048]],
        resize_input=True,
        normalize_input=True,
        use_fid_inception=True,
    ).eval()


def inception_features(images: torch.Tensor, batch_size: int = 50) -> np.ndarray:
    model = load_once(weights_path(), fid_inception)
    features = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].float().clamp(0, 1)
            if batch.shape[1] == 1:
                batch = batch.expand(-1, 3, -1, -1)
            features.append(model(batch)[0].flatten(1).double().numpy())
    return np.concatenate(features)


def missing_weights() -> str:
    """Where to put the weights file, said when it is absent."""
    return (
        f"FID Inception weights {FID_WEIGHTS} are not in {weights_path().parent}/: download "
        f"{FID_WEIGHTS_URL} there, or run `invbench data fid-inception` on an online machine"
    )


@dataset("fid-inception")
def fetch_fid_weights(data_root: Path, offline: bool) -> str:
    """The FID Inception weights (not a dataset, but fetched the same way)."""
    return fetch_hub_weights(
        "fid-inception", weights_path(), FID_WEIGHTS_URL, missing_weights(), "github.com", offline
    )


@register_metric(
    "fid",
    higher_is_better=False,
    modalities=("image",),
    citation=FID_CITATION,
    weights=weights_path,
    fetch_weights=fetch_fid_weights,
)
def fid(reconstructions: torch.Tensor, private: torch.Tensor, offline: bool) -> float | Unavailable:
    """FID of reconstructions [N, C, H, W] against private images [M, C, H, W], or Unavailable."""
    if not weights_path().exists() and not may_download(offline):
        return Unavailable(missing_weights())
    if min(len(reconstructions), len(private)) < 2:
        return Unavailable("FID needs at least two images on each side")
    try:
        a, b = inception_features(reconstructions), inception_features(private)
    except Exception as error:  # a failed download or load: say so, never a number
        return Unavailable(f"FID Inception weights could not be loaded: {error}")
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
