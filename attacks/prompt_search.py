"""Prompt search: black-box search for a prompt whose released next-token distribution matches
the observed one (the search baseline of Morris et al., ICLR 2024).

For each private prompt with observed distribution p, every scored prompt x costing one query
and scored by KL(p || q(. | x)):

1. Initialise: score the first ``max_tokens`` tokens of ``init_pool`` PUBLIC records (other
   people's records: attacker knowledge) and keep the ``beam_width`` best as beams.
2. Refine, position by position, in sweeps: replace token i of every beam by each candidate
   token; keep the ``beam_width`` best prompts among beams and substitutions.
3. Answer the prompt of lowest KL seen once the prompt's share of the query budget is spent.

Candidate tokens are the ``public_vocab`` most frequent tokens of the public records plus the
``observed_topk`` most likely tokens under p (the leaked distribution itself). The query budget
of the cell is split evenly over the prompts.
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
        tokenizer, length = victims.tokenizer, victims.max_tokens
        public = [tokenizer.encode(record).ids for record in victims.public_records]
        counts = Counter(token for ids in public for token in ids)
        public_vocab = [t for t, _ in counts.most_common(int(self.cfg["public_vocab"]))]
        pool = [ids[:length] for ids in public[:int(self.cfg["init_pool"])]]
        per_prompt = (oracle.remaining() or 0) // len(victims.observed)
        answers = []
        with progress_bar(len(victims.observed), "prompt-search", self.progress) as bar:
            for observed in victims.observed:
                leaked = observed.topk(int(self.cfg["observed_topk"])).indices.tolist()
                candidates = list(dict.fromkeys(public_vocab + leaked))
                best = self._search(oracle, observed, pool, candidates,
                                    int(self.cfg["beam_width"]), per_prompt)
                answers.append(tokenizer.decode(best))
                bar.update()
        return answers

    @staticmethod
    def _search(oracle, observed, pool, candidates, beam_width, queries) -> list[int]:
        pool = pool[:queries]
        scores = kl_divergence(observed[None], oracle(pool))
        queries -= len(pool)
        ranked = scores.argsort()[:beam_width].tolist()
        beams = [(float(scores[i]), pool[i]) for i in ranked]
        improved = True
        while improved:
            improved = False
            for position in range(max(len(b) for _, b in beams)):
                trials = [b[:position] + [t] + b[position + 1:] for _, b in beams
                          if position < len(b) for t in candidates if t != b[position]]
                if not trials or len(trials) > queries:
                    return beams[0][1]
                queries -= len(trials)
                kl = kl_divergence(observed[None], oracle(trials)).tolist()
                merged = sorted(beams + list(zip(kl, trials)), key=lambda item: item[0])
                new_beams = merged[:beam_width]
                improved |= new_beams[0][0] < beams[0][0]
                beams = new_beams
        return beams[0][1]
