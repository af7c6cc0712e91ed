"""GEIA, the generative embedding inversion attack (Li et al., "Sentence Embedding Leaks More
Information than You Expect: Generative Embedding Inversion Attack to Recover the Whole
Sentence", ACL Findings 2023).

The attacker embeds PUBLIC texts through the API (one query each, at most ``train_texts``) and
trains a GPT-2-architecture decoder to write each text from its embedding, the embedding entering
as the decoder's first inputs (Sec. 3.2; teacher forcing, Eq. 3's cross-entropy). It then
decodes the released embeddings of the private texts by beam search. The paper fine-tunes a
pretrained GPT-2 on large public corpora; at the mini's scale the decoder is the small GPT-2 of
``attacks/_embedding_decoder.py`` trained from scratch in the cell.
"""

from __future__ import annotations

import torch

from attacks._embedding_decoder import fit_inverter, training_texts
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack

GEIA = Citation(
    "Sentence Embedding Leaks More Information than You Expect: Generative Embedding "
    "Inversion Attack to Recover the Whole Sentence",
    "Li et al.",
    "ACL Findings",
    2023,
    "https://arxiv.org/abs/2305.03010",
)


@register_attack("geia", modalities=("embedding",), access="scores", version="1.0", citation=GEIA)
class GEIA(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        texts = training_texts(oracle, victims, int(self.cfg["train_texts"]))
        inverter = fit_inverter(texts, oracle(texts), self.cfg, generator)
        return inverter.invert(victims.observed, int(self.cfg["beam"]), int(self.cfg["max_tokens"]))
