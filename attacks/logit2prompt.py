"""logit2prompt (Morris et al., "Language Model Inversion", ICLR 2024): a learned inverter from
the released next-token distribution to the prompt, trained on PUBLIC prompts (one query each)
and applied to the distributions released after the secret ones.

The paper unrolls the whole distribution into pseudo-embeddings of a fine-tuned T5 (Sec. 4.1).
At the mini's scale the inverter is the copy-attention encoder-decoder of
``attacks/_inverter.py``, and the distribution enters as its ``top_tokens`` most likely tokens
(their text, and their released log-probability as a feature): a departure that keeps what a
model of hundreds of training pairs can use, and lets the inverter copy a leaked token (on
``records``, the secret's first name) into the prompt. Under top-k release the tokens the
release zeroed are left out.
"""

from __future__ import annotations

import torch

from attacks._inverter import Example, invert_from_public, split_words
from benchmark.methods import Attack
from benchmark.registry import register_attack
from metrics.text_overlap import LM_INVERSION


def distribution_example(
    probs: torch.Tensor, tokenizer, top: int, prompt: str | None = None
) -> Example:
    values, tokens = probs.topk(min(top, probs.numel()))
    keep = values > 0
    words = [
        tokenizer.decode([token]).strip() or repr(tokenizer.decode([token]))
        for token in tokens[keep].tolist()
    ]
    features = [[value / 10] for value in torch.log(values[keep]).tolist()]
    return Example(words, features, None if prompt is None else split_words(prompt))


@register_attack(
    "logit2prompt", modalities=("text",), access="scores", version="1.0", citation=LM_INVERSION
)
class Logit2Prompt(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        tokenizer, top = victims.tokenizer, int(self.cfg["top_tokens"])
        return invert_from_public(
            oracle,
            victims,
            self.cfg,
            lambda probs, prompt=None: distribution_example(probs, tokenizer, top, prompt),
            generator,
            features=1,
        )
