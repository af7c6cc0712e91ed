"""Greedy coordinate gradient prompt inversion (white-box): token swaps ranked by the gradient
of the inversion objective with respect to the one-hot prompt (Zou et al., "Universal and
Transferable Adversarial Attacks on Aligned Language Models", 2023, Algorithm 1), applied to
the objective of relaxed-invert (``attacks/_text.py``):

    L(x) = KL(p || q(. | BOS, x)) + fluency * NLL(x)

For every secret prompt (all of one length batched), each step:

1. g = dL/de_x, the gradient at the one-hot rows of the current prompt x (one forward and
   backward through the soft-prompt path);
2. per position l, the ``topk`` tokens with the most negative g_{l,v} are candidate swaps;
3. ``search_width`` candidates, each x with one uniformly chosen position replaced by one of its
   candidate tokens, are scored exactly;
4. x becomes the best candidate (Algorithm 1 keeps it even when it is worse than x), and the best
   prompt seen is the answer.

Start: the public prompt of the secret's length with the lowest L among ``init_pool`` of them
(Zou et al. start from "! ! ! !"; the public prompts are the attacker's knowledge of the format).
Budget: every scored prompt, and every gradient row, is one query of the white-box access; the
steps are planned so that the total stays within the suite's ``queries``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks._text import (
    WhiteBoxPromptInversion,
    inversion_objective,
    prompt_log_probs,
    soft_prompt_log_probs,
)
from benchmark.progress import progress_bar
from benchmark.registry import Citation, register_attack


@register_attack(
    "gcg-invert",
    modalities=("text",),
    access="whitebox",
    version="1.0",
    citation=Citation(
        "Universal and Transferable Adversarial Attacks on Aligned Language Models",
        "Zou et al.",
        "arXiv",
        2023,
        "https://arxiv.org/abs/2307.15043",
    ),
)
class GCGInvert(WhiteBoxPromptInversion):
    def _objective(
        self, model, bos: int, observed: torch.Tensor, ids: torch.Tensor, vocab: int
    ) -> torch.Tensor:
        return inversion_objective(
            observed,
            prompt_log_probs(model, ids, bos),
            F.one_hot(ids, vocab).float(),
            float(self.cfg["fluency"]),
        )

    @torch.no_grad()
    def _scores(self, model, bos, observed, candidates, vocab) -> torch.Tensor:
        """Objective of ``candidates`` [P, B, L] against each prompt's observation."""
        prompts, width, length = candidates.shape
        scores = self._objective(
            model,
            bos,
            observed.repeat_interleave(width, dim=0),
            candidates.reshape(-1, length),
            vocab,
        )
        return scores.view(prompts, width)

    def _invert(
        self,
        model,
        bos: int,
        observed: torch.Tensor,
        length: int,
        queries: int,
        starts: list[list[int]],
        generator: torch.Generator,
    ) -> torch.Tensor:
        prompts, vocab = len(observed), observed.shape[1]
        width, topk = int(self.cfg["search_width"]), int(self.cfg["topk"])
        pool = torch.tensor(starts[: int(self.cfg["init_pool"])]).view(-1, length)
        steps = (queries - prompts * len(pool)) // (prompts * (1 + width))
        if steps < 1:
            raise ValueError(
                f"gcg-invert: {queries} queries do not cover the {len(pool)} "
                f"starts and one step of {width} candidates for {prompts} "
                f"prompts; raise the suite's queries or lower attack.init_pool"
            )
        start_scores = self._scores(
            model, bos, observed, pool.expand(prompts, -1, -1).contiguous(), vocab
        )
        current = pool[start_scores.argmin(dim=1)]
        best, best_score = current.clone(), start_scores.min(dim=1).values
        rows = torch.arange(prompts)
        with progress_bar(
            steps, f"gcg-invert ({prompts} prompts of {length} tokens)", self.progress
        ) as bar:
            for _ in range(steps):
                one_hot = F.one_hot(current, vocab).float().requires_grad_()
                loss = inversion_objective(
                    observed,
                    soft_prompt_log_probs(model, one_hot, bos),
                    one_hot,
                    float(self.cfg["fluency"]),
                ).sum()
                (gradient,) = torch.autograd.grad(loss, one_hot)
                gradient = gradient.scatter(-1, current[..., None], float("inf"))  # no no-op
                top = (-gradient).topk(topk, dim=-1).indices  # [P, L, topk]
                position = torch.randint(length, (prompts, width), generator=generator)
                choice = torch.randint(topk, (prompts, width), generator=generator)
                tokens = top[rows[:, None], position, choice]
                candidates = current[:, None].repeat(1, width, 1)
                candidates.scatter_(2, position[..., None], tokens[..., None])
                scores = self._scores(model, bos, observed, candidates, vocab)
                low, which = scores.min(dim=1)
                current = candidates[rows, which]
                better = low < best_score
                best[better], best_score = current[better], torch.where(better, low, best_score)
                bar.update()
        return best
