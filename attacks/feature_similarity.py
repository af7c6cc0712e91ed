"""Feature similarity: edge scores from the cosine similarity of raw node features.

    score(u, v) = <x_u, x_v> / (||x_u|| ||x_v||)

It never queries the model (access ``none``): citation graphs are homophilous, so similar
bag-of-words papers cite each other whether or not a GNN was released. This is the floor a
graph attack must beat to show leakage *from the model*; on Cora it is about 0.80 AUC, not 0.5
(He et al. USENIX Security 2021 use it as their feature-only baseline, Sec. 5).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


@register_attack(
    "feature-similarity",
    modalities=("graph",),
    access="none",
    version="1.0",
    citation=Citation(
        "Stealing Links from Graph Neural Networks (feature-similarity baseline)",
        "He et al.",
        "USENIX Security",
        2021,
        "https://arxiv.org/abs/2005.02131",
    ),
)
class FeatureSimilarity(Attack):
    def run(self, access, victims, prior, budget: dict, generator: torch.Generator):
        features = F.normalize(victims.features.float(), dim=1)
        return features @ features.T
