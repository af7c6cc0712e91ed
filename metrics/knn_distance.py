"""KNN distance in the evaluation model's feature space (Zhang et al. CVPR 2020, Sec. 4)."""

from __future__ import annotations

import torch

from benchmark.registry import register_metric
from metrics.attack_accuracy import GMI


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
    distances = []
    for label in recon_labels.unique():
        rec = recon_features[recon_labels == label]
        private = private_features[private_labels == label]
        if len(private) == 0:
            raise ValueError(f"no private image of class {int(label)} to compare with")
        distances.append(torch.cdist(rec, private).pow(2).min(dim=1).values)
    return torch.cat(distances).mean().item()
