"""Extraction prompts: the text-only baseline of Morris et al. (ICLR 2024, Sec. 5, "jailbreak
strings"). The attacker's message is appended to the hidden prompt (an :class:`AfterSecret`
query: the API puts it after the secret the attacker never sees), and the text the model
generates is read as the prompt, cut to the secret's known length in tokens.

Which string to send is chosen on PUBLIC prompts, whose text the attacker knows: each candidate
is appended to ``calibration`` public prompts, and the one whose continuations have the highest
mean sentence BLEU against those prompts is sent after every secret. (The paper reports the best
string per dataset; choosing on public data is the attacker's honest version of that.) Each
prompt sent, public or secret, costs one query.
"""

from __future__ import annotations

import torch

from attacks._text import public_prompts
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack
from metrics.text_overlap import mean_sentence_bleu
from tasks.text import AfterSecret


def cut_to_length(text: str, tokenizer, length: int) -> str:
    """The first ``length`` tokens of ``text``, without its leading whitespace."""
    return tokenizer.decode(tokenizer.encode(text.lstrip()).ids[:length]).strip()


@register_attack(
    "extraction-prompt",
    modalities=("text",),
    access="label",
    version="1.0",
    citation=Citation(
        "Language Model Inversion (jailbreak-string baseline)",
        "Morris et al.",
        "ICLR",
        2024,
        "https://arxiv.org/abs/2311.13647",
    ),
)
class ExtractionPrompt(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        tokenizer = victims.tokenizer
        strings = [str(s) for s in self.cfg["strings"]]
        if not strings:
            raise ValueError(
                "extraction-prompt: attack.strings is empty; give at least one "
                'extraction string ("" reads the plain continuation)'
            )
        public = public_prompts(victims)[: int(self.cfg["calibration"])]
        truth = [tokenizer.decode(ids) for ids in public]

        def answers(queries, lengths) -> list[str]:
            return [
                cut_to_length(text, tokenizer, length)
                for text, length in zip(oracle(queries), lengths)
            ]

        suffixes = [tuple(tokenizer.encode(s).ids) for s in strings]
        scores = [
            mean_sentence_bleu(
                answers([[*ids, *suffix] for ids in public], [len(ids) for ids in public]), truth
            )
            for suffix in suffixes
        ]
        self.chosen = strings[max(range(len(strings)), key=scores.__getitem__)]
        self.calibration_bleu = dict(zip(strings, scores))
        best = suffixes[strings.index(self.chosen)]
        return answers([AfterSecret(i, best) for i in range(len(victims.lengths))], victims.lengths)

    def details(self) -> dict:
        """The string sent after every secret, and each candidate's BLEU on public prompts."""
        chosen = getattr(self, "chosen", None)
        return (
            {} if chosen is None else {"string": chosen, "calibration_bleu": self.calibration_bleu}
        )
