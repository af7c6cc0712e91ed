"""Label-only release: the released output is the one-hot vector of the predicted class.

    p_released = onehot(argmax_c p[c])

The strongest output-processing defense (Shokri et al., S&P 2017, Sec. VIII): score-based
attacks see only labels; utility (accuracy) is unchanged by construction.
"""

import torch

from benchmark.methods import Defense
from benchmark.registry import PROBABILITY_RELEASES, Citation, register_defense


@register_defense(
    "label-only-release",
    modalities=PROBABILITY_RELEASES,
    version="1.0",
    citation=Citation(
        "Membership Inference Attacks Against Machine Learning Models",
        "Shokri et al.",
        "IEEE S&P",
        2017,
        "https://arxiv.org/abs/1610.05820",
    ),
)
class LabelOnlyRelease(Defense):
    kind = "output"

    def transform_output(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.zeros_like(probs).scatter(-1, probs.argmax(-1, keepdim=True), 1.0)
