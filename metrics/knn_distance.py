"""KNN distance in the evaluation model's feature space (Zhang et al. CVPR 2020, Sec. 4)."""

from __future__ import annotations

import torch

from benchmark.registry import register_metric
from metrics.attack_accuracy import GMI


def knn_feature_distances(
    recon_features: torch.Tensor,
    recon_labels: torch.Tensor,
    private_features: torch.Tensor,
    private_labels: torch.Tensor,
) -> torch.Tensor:
    """min_j ||f(x_rec) - f(x_j)||_2^2 per reconstruction [N], in the reconstructions' order,
    over the private images x_j of its class."""
    distances = torch.empty(len(recon_features), dtype=recon_features.dtype)
    for label in recon_labels.unique():
        rows = recon_labels == label
        private = private_features[private_labels == label]
        if len(private) == 0:
            raise ValueError(f"no private image of class {int(label)} to compare with")
        distances[rows] = torch.cdist(recon_features[rows], private).pow(2).min(dim=1).values
    return distances


@register_metric("knn_dist", higher_is_better=False, modalities=("image",), citation=GMI)
def knn_feature_distance(
    recon_features: torch.Tensor,
    recon_labels: torch.Tensor,
    private_features: torch.Tensor,
    private_labels: torch.Tensor,
) -> float:
    """Mean over reconstructions of min_j ||f(x_rec) - f(x_j)||_2^2, x_j private of the same class.

    Features are the evaluation model's penultimate layer. Lower means closer to real private
    images of the attacked identity.
    """
    return (
        knn_feature_distances(recon_features, recon_labels, private_features, private_labels)
        .mean()
        .item()
    )
