"""Prompt search: black-box beam search for a prompt whose released next-token distribution
matches the observed one (the search baseline of Morris et al., ICLR 2024, Sec. 6).

For each private prompt, with observed distribution p:

    beams_0 = {empty prompt}
    beams_t = the ``beam_width`` extensions b + [v] (b in beams_{t-1}, v in candidates) with the
              lowest KL(p || q(. | b + [v])), q being the released distribution for the query
    answer  = the prompt of lowest KL seen at any length <= max_tokens

Candidate tokens are the ``public_vocab`` most frequent tokens of the PUBLIC records plus the
``observed_topk`` most likely tokens under p (the leaked distribution itself). Each scored
prompt is one query; the cell's query budget is split evenly over the prompts.
"""

from __future__ import annotations

from collections import Counter

import torch

from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack
from tasks.training import progress_bar


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KL(p || q) per row; zero entries of a top-k or label release are floored at eps."""
    p = p.clamp_min(0)
    return (p * (torch.log(p + eps) - torch.log(q.clamp_min(0) + eps))).sum(-1)


@register_attack(
    "prompt-search", modalities=("text",), access="scores", version="1.0",
    citation=Citation("Language Model Inversion", "Morris et al.", "ICLR", 2024,
                      "https://arxiv.org/abs/2311.13647"))
class PromptSearch(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        counts = Counter(t for record in victims.public_records
                         for t in victims.tokenizer.encode(record).ids)
        public_vocab = [t for t, _ in counts.most_common(int(self.cfg["public_vocab"]))]
        beam_width = int(self.cfg["beam_width"])
        per_prompt = (oracle.remaining() or 0) // len(victims.observed)
        answers = []
        with progress_bar(len(victims.observed), "prompt-search", True) as bar:
            for observed in victims.observed:
                leaked = observed.topk(int(self.cfg["observed_topk"])).indices.tolist()
                candidates = list(dict.fromkeys(public_vocab + leaked))
                answers.append(victims.tokenizer.decode(
                    self._search(oracle, observed, candidates, beam_width, victims.max_tokens,
                                 per_prompt)))
                bar.update()
        return answers

    @staticmethod
    def _search(oracle, observed, candidates, beam_width, max_tokens, queries) -> list[int]:
        beams: list[list[int]] = [[]]
        best, best_kl = [], float("inf")
        for _ in range(max_tokens):
            extensions = [beam + [token] for beam in beams for token in candidates]
            if len(extensions) > queries:
                break
            queries -= len(extensions)
            kl = kl_divergence(observed[None], oracle(extensions))
            order = kl.argsort()[:beam_width].tolist()
            beams = [extensions[i] for i in order]
            if kl[order[0]] < best_kl:
                best, best_kl = beams[0], float(kl[order[0]])
        return best
