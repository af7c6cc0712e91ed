"""Temperature: release the distribution at temperature T instead of 1,

    p_released = softmax(log p / T)

T > 1 flattens what is released (the probabilities carry less about the input) and leaves the
argmax, so next-token top-1 agreement, unchanged; T < 1 sharpens it. The sampling temperature of
language-model APIs, used as an output-perturbation defense against logit-based prompt
inversion (Morris et al., ICLR 2024, Sec. 7, which also evaluates top-k release and noise).
"""

import torch

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense


@register_defense(
    "temperature",
    modalities=("text",),
    version="1.0",
    citation=Citation(
        "Language Model Inversion (defenses: sampling temperature)",
        "Morris et al.",
        "ICLR",
        2024,
        "https://arxiv.org/abs/2311.13647",
    ),
)
class Temperature(Defense):
    kind = "output"

    def transform_output(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        temperature = float(self.cfg["temperature"])
        if not temperature > 0:
            raise ValueError(f"temperature: defense.temperature must be > 0, got {temperature}")
        logprobs = torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))
        return torch.softmax(logprobs / temperature, dim=-1)
