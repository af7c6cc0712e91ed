"""The constant answer: every secret prompt is answered with the most common PUBLIC prompt,
the trivial baseline of prompt inversion (Morris et al., ICLR 2024, Sec. 5). It never queries
the model, so what it scores is what the attacker's public knowledge alone gives (on
``records``, the template "name: ... | email:").

Public prompts are the public records up to their ``email:`` (on ``minilm-embeddings``, the
public records whole: the constant answer to an embedding). When several are
equally common (Faker's records are all distinct), the tie goes to the one with the highest
mean sentence BLEU against the other public prompts (at most ``candidates`` of them each way):
the strongest constant guess the public data supports.
"""

from __future__ import annotations

from collections import Counter

import torch

from attacks._text import public_texts
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack
from metrics.text_overlap import mean_sentence_bleu


def most_common_prompt(prompts: list[str], candidates: int) -> str:
    counts = Counter(prompts)
    top = max(counts.values())
    tied = [p for p in dict.fromkeys(prompts) if counts[p] == top][:candidates]
    if len(tied) == 1:
        return tied[0]
    others = prompts[:candidates]
    return max(tied, key=lambda p: mean_sentence_bleu([p] * len(others), others))


@register_attack(
    "public-prompt",
    modalities=("text", "embedding"),
    access="none",
    version="1.0",
    citation=Citation(
        "Language Model Inversion (the constant-answer baseline)",
        "Morris et al.",
        "ICLR",
        2024,
        "https://arxiv.org/abs/2311.13647",
    ),
)
class PublicPrompt(Attack):
    def run(self, access, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        answer = most_common_prompt(public_texts(victims), int(self.cfg["candidates"]))
        return [answer] * len(victims.observed)
