"""Rounding: release probabilities rounded to ``decimals`` decimal places.

    p_released = round(p, d)                         (space: probs)
    p_released = softmax(round(log p, d))            (space: logprobs)

``space: auto`` (the default) rounds log-probabilities on text tasks, as a language-model API
returns logprobs, and probabilities elsewhere.

Rounding in probability space is the confidence-masking defense evaluated by Fredrikson et al.
(CCS 2015, Sec. 6) and, for link stealing, by He et al. (USENIX Security 2021, Sec. 7); a
probability rounded to 0 stays 0, so small scores lose their ranking information. Rounding
log-probabilities (1-2 decimals) is the variant for language-model APIs that return logprobs.
The argmax (and so utility) is preserved except where rounding creates ties.
"""

import torch

from benchmark.methods import Defense
from benchmark.registry import PROBABILITY_RELEASES, Citation, register_defense


@register_defense(
    "rounding",
    modalities=PROBABILITY_RELEASES,
    version="1.0",
    citation=Citation(
        "Model Inversion Attacks that Exploit Confidence Information and Basic Countermeasures",
        "Fredrikson et al.",
        "CCS",
        2015,
        "https://doi.org/10.1145/2810103.2813677",
    ),
)
class Rounding(Defense):
    kind = "output"

    def transform_output(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        decimals = int(self.cfg["decimals"])
        space = self.cfg.get("space", "probs")
        if space == "auto":
            space = "logprobs" if self.modality == "text" else "probs"
        if space == "probs":
            return torch.round(probs, decimals=decimals)
        if space == "logprobs":
            logprobs = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
            return torch.softmax(torch.round(logprobs, decimals=decimals), dim=-1)
        raise ValueError(f"rounding: unknown space '{space}'; use 'auto', 'probs' or 'logprobs'")
