"""What a record shows of its reconstructions, for the leaderboard (``record["examples"]``).

People would rather look than read: an image cell keeps a small PNG of a few reconstructions
beside a private image of the same identity, a text cell a few true and reconstructed prompts, a
graph cell its ROC curve. Each is small (a few kB) and plain JSON, so a record stays one file.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import torch
from PIL import Image
from sklearn.metrics import roc_curve

EXAMPLE_IDENTITIES = 4  # image cells: identities shown
THUMBNAIL_PIXELS = 48  # image cells: a tile's side, upscaled (nearest) from the task's size
EXAMPLE_PROMPTS = 5  # text cells: prompts shown
ROC_POINTS = 64  # graph cells: points kept of the ROC curve


def image_pairs(private: torch.Tensor, reconstructed: torch.Tensor, identities: list[int]) -> dict:
    """A PNG with one column per identity: its private image above one reconstruction.

    ``private`` and ``reconstructed`` are [n, C, H, W] in [0, 1], row i of each belonging to
    ``identities[i]``.
    """
    grid = torch.cat(
        [torch.cat(list(row.float().clamp(0, 1)), dim=2) for row in (private, reconstructed)], dim=1
    )  # [C, 2H, nW]
    pixels = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    scale = max(1, THUMBNAIL_PIXELS // private.shape[-1])
    image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return {
        "kind": "images",
        "identities": [int(i) for i in identities],
        "rows": ["private", "reconstruction"],
        "png": base64.b64encode(buffer.getvalue()).decode("ascii"),
    }


def prompt_pairs(secrets: list[str], reconstructed: list[str]) -> dict:
    return {
        "kind": "text",
        "pairs": [
            {"true": s, "reconstructed": r}
            for s, r in zip(secrets[:EXAMPLE_PROMPTS], reconstructed)
        ],
    }


def roc_curve_points(positive: np.ndarray, negative: np.ndarray) -> dict:
    """The ROC curve of edge scores (positives: true edges), one point per distinct threshold
    (scikit-learn's ``roc_curve``), thinned to ``ROC_POINTS``."""
    truth = np.r_[np.ones(len(positive)), np.zeros(len(negative))]
    fpr, tpr, _ = roc_curve(truth, np.r_[positive, negative], drop_intermediate=False)
    if len(fpr) > ROC_POINTS:
        keep = np.unique(np.linspace(0, len(fpr) - 1, ROC_POINTS).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return {
        "kind": "roc",
        "fpr": [round(float(x), 4) for x in fpr],
        "tpr": [round(float(y), 4) for y in tpr],
    }
