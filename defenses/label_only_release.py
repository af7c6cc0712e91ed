"""Label-only release: the released output is the one-hot vector of the predicted class.

    p_released = onehot(argmax_c p[c])

The strongest output-processing defense (Shokri et al., S&P 2017, Sec. VIII): score-based
attacks see only labels; utility (accuracy) is unchanged by construction.
"""

import torch

from benchmark.access import reduce_to_access
from benchmark.methods import Defense
from benchmark.registry import PROBABILITY_RELEASES, Citation, register_defense

# Sec. VIII evaluates label-only and top-k release as defenses (defenses/topk_release.py too)
SHOKRI_2017 = Citation(
    "Membership Inference Attacks Against Machine Learning Models",
    "Shokri et al.",
    "IEEE S&P",
    2017,
    "https://arxiv.org/abs/1610.05820",
)


@register_defense(
    "label-only-release",
    modalities=PROBABILITY_RELEASES,
    version="1.0",
    citation=SHOKRI_2017,
)
class LabelOnlyRelease(Defense):
    kind = "output"

    def transform_output(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return reduce_to_access(probs, "label", topk=1)
