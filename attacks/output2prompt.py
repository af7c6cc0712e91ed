"""output2prompt (Zhang et al., "Extracting Prompts by Inverting LLM Outputs", EMNLP 2024):
prompt inversion from generated text alone. The attacker sends PUBLIC prompts to the text-only
API (one query each), trains an inverter from each continuation to its prompt, and applies it to
the continuations the model generated after the secret prompts.

The paper fine-tunes T5 on many sampled outputs per prompt; here the inverter is the small
copy-attention encoder-decoder of ``attacks/_inverter.py`` trained in the cell's budget on the
public prompts (at most ``train_prompts``), one continuation each (greedy unless the task
samples). On ``records`` the continuation after a secret holds the address, which repeats the
name: the copy mechanism writes those words into the prompt.
"""

from __future__ import annotations

import torch

from attacks._inverter import Example, invert_from_public, split_words
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


def text_example(text: str, prompt: str | None = None) -> Example:
    return Example(
        [word for _, word in split_words(text)],
        prompt=None if prompt is None else split_words(prompt),
    )


@register_attack(
    "output2prompt",
    modalities=("text",),
    access="label",
    version="1.0",
    citation=Citation(
        "Extracting Prompts by Inverting LLM Outputs",
        "Zhang et al.",
        "EMNLP",
        2024,
        "https://arxiv.org/abs/2405.15012",
    ),
)
class Output2Prompt(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        return invert_from_public(oracle, victims, self.cfg, text_example, generator)
