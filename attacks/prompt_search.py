"""Prompt search: black-box search for a prompt whose released next-token distribution matches
the observed one (the search baseline of Morris et al., ICLR 2024).

For each private prompt with observed distribution p, every scored prompt x costing one query
and scored by KL(p || q(. | x)) + fluency * NLL_bigram(x), where the bigram model is estimated
on the PUBLIC prompts (``PublicBigram``; departure: without a fluency term the swaps that lower
the KL most are gibberish, measured on ``records``: BLEU 24.0 against 30.7 for answering the
most common public prompt):

1. Initialise: score ``init_pool`` prompts of PUBLIC records (other people's records: attacker
   knowledge) of the secret's length and keep the ``beam_width`` best as beams.
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

from attacks._text import PublicBigram, bos_id, public_prompts, same_length_pool
from benchmark.methods import Attack
from benchmark.progress import progress_bar
from benchmark.registry import register_attack
from metrics.kl_divergence import kl_divergence
from metrics.text_overlap import LM_INVERSION


@register_attack(
    "prompt-search", modalities=("text",), access="scores", version="1.0", citation=LM_INVERSION
)
class PromptSearch(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        tokenizer = victims.tokenizer
        public = public_prompts(victims)
        counts = Counter(token for ids in public for token in ids)
        public_vocab = [t for t, _ in counts.most_common(int(self.cfg["public_vocab"]))]
        per_prompt = (oracle.remaining() or 0) // len(victims.observed)
        bigram = PublicBigram(
            public,
            victims.observed.shape[1],
            bos_id(tokenizer),
            float(self.cfg["bigram_smoothing"]),
        )
        fluency = float(self.cfg["fluency"])

        def score(observed, prompts, released) -> torch.Tensor:
            return kl_divergence(observed[None], released) + fluency * bigram.nll(
                torch.tensor(prompts)
            )

        answers = []
        with progress_bar(len(victims.observed), "prompt-search", self.progress) as bar:
            for observed, length in zip(victims.observed, victims.lengths):
                pool = same_length_pool(public, length, int(self.cfg["init_pool"]))
                leaked = observed.topk(int(self.cfg["observed_topk"])).indices.tolist()
                candidates = list(dict.fromkeys(public_vocab + leaked))
                best = self._search(
                    oracle,
                    observed,
                    pool,
                    candidates,
                    int(self.cfg["beam_width"]),
                    per_prompt,
                    score,
                )
                answers.append(tokenizer.decode(best))
                bar.update()
        return answers

    @staticmethod
    def _search(oracle, observed, pool, candidates, beam_width, queries, score) -> list[int]:
        pool = pool[:queries]
        scores = score(observed, pool, oracle(pool))
        queries -= len(pool)
        ranked = scores.argsort()[:beam_width].tolist()
        beams = [(float(scores[i]), pool[i]) for i in ranked]
        improved = True
        while improved:
            improved = False
            for position in range(max(len(b) for _, b in beams)):
                trials = [
                    b[:position] + [t] + b[position + 1 :]
                    for _, b in beams
                    if position < len(b)
                    for t in candidates
                    if t != b[position]
                ]
                if not trials or len(trials) > queries:
                    return beams[0][1]
                queries -= len(trials)
                kl = score(observed, trials, oracle(trials)).tolist()
                merged = sorted(beams + list(zip(kl, trials)), key=lambda item: item[0])
                new_beams = merged[:beam_width]
                improved |= new_beams[0][0] < beams[0][0]
                beams = new_beams
        return beams[0][1]
