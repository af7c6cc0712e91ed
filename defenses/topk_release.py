"""Top-k release: only the k largest probabilities are released, renormalised to sum to 1.

    p_released[c] = p[c] / sum_{c' in top_k(p)} p[c']   if c in top_k(p), else 0

The prediction API of many deployed classifiers (Shokri et al., S&P 2017, Sec. VIII evaluate it
as a membership-inference defense; He et al. USENIX Security 2021, Sec. 7 for link stealing).
Unlike the ``topk`` access level, which zeroes the rest without renormalising, this is the
owner's choice and applies to every attack that reads scores.
"""

import torch

from benchmark.methods import Defense
from benchmark.registry import PROBABILITY_RELEASES, register_defense
from defenses.label_only_release import SHOKRI_2017


@register_defense(
    "topk-release",
    modalities=PROBABILITY_RELEASES,
    version="1.0",
    citation=SHOKRI_2017,
)
class TopKRelease(Defense):
    kind = "output"

    def transform_output(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        k = min(int(self.cfg["k"]), probs.shape[-1])
        values, indices = probs.topk(k, dim=-1)
        values = values / values.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return torch.zeros_like(probs).scatter(-1, indices, values)
