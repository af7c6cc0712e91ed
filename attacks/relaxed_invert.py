"""Relaxed prompt inversion (white-box): optimise a relaxed one-hot prompt so that the target's
next-token distribution matches the released one, then project to tokens.

SODA (Skapars et al., "GPT, But Backwards: Exactly Inverting Language Model Outputs", 2025),
with PEZ's projection of the continuous iterate to tokens (Wen et al., NeurIPS 2023). For each
secret prompt with released distribution p and ``restarts`` independent starts, all optimised
as one batch:

    w_l = softmax(theta_l / tau)                  a distribution over the vocabulary, l = 1..L
    e_l = w_l E                                   its expected token embedding
    minimise KL(p || q(. | BOS, e_1..e_L)) + fluency * NLL(w)     (attacks/_text.py)

with Adam, weight decay and gradient clipping. Departures, measured on ``records``: the fluency
term (the prompt's NLL under the model), without which the projections are gibberish whose
distribution matches as well as the secret's; and starts around PUBLIC prompts of the secret's
length (theta = ``init_public`` x one-hot + noise) rather than pure noise.

Every ``project_every`` steps the iterate is projected, x_l = argmax_v theta_{l,v}, and the
discrete prompt is scored by KL(p || q(. | BOS, x)); a restart whose discrete KL has not improved
for ``patience`` projections is started again from fresh noise (SODA's reset). The answer is the
discrete prompt of lowest KL seen over every restart.

Budget: each relaxed or discrete forward of one prompt is one query (the white-box access counts
them); the steps are planned so that the prompts' total stays within the suite's ``queries``,
the same budget as the black-box attacks of the task.
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
    "relaxed-invert",
    modalities=("text",),
    access="whitebox",
    version="1.0",
    citation=Citation(
        "GPT, But Backwards: Exactly Inverting Language Model Outputs",
        "Skapars et al.",
        "arXiv",
        2025,
        "https://arxiv.org/abs/2507.01693",
    ),
)
class RelaxedInvert(WhiteBoxPromptInversion):
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
        prompts, restarts, vocab = len(observed), int(self.cfg["restarts"]), observed.shape[1]
        every = int(self.cfg["project_every"])
        rows = prompts * restarts
        steps = int(queries // (rows * (1 + 1 / every)))
        if steps < every:
            raise ValueError(
                f"relaxed-invert: {queries} queries buy {steps} steps for "
                f"{prompts} prompts x {restarts} restarts; raise the suite's "
                f"queries or lower attack.restarts"
            )
        std, tau = float(self.cfg["init_std"]), float(self.cfg["temperature"])
        fluency = float(self.cfg["fluency"])
        scale = float(self.cfg["init_public"])

        def initial(count: int) -> torch.Tensor:
            """Noise around the one-hot of random public prompts (``init_public`` x one-hot)."""
            pick = torch.randint(len(starts), (count,), generator=generator)
            ids = torch.tensor([starts[i] for i in pick.tolist()]).view(count, length)
            return (
                torch.randn(count, length, vocab, generator=generator) * std
                + scale * F.one_hot(ids, vocab).float()
            )

        theta = initial(rows).requires_grad_()
        optimizer = torch.optim.AdamW(
            [theta],
            lr=float(self.cfg["lr"]),
            betas=tuple(self.cfg["betas"]),
            weight_decay=float(self.cfg["weight_decay"]),
        )
        target = observed.repeat_interleave(restarts, dim=0)
        best_kl = torch.full((prompts,), float("inf"))
        best = torch.zeros(prompts, length, dtype=torch.long)
        own_best = torch.full((rows,), float("inf"))
        stale = torch.zeros(rows, dtype=torch.long)
        with progress_bar(
            steps, f"relaxed-invert ({prompts} prompts of {length} tokens)", self.progress
        ) as bar:
            for step in range(steps):
                weights = torch.softmax(theta / tau, -1)
                loss = inversion_objective(
                    target, soft_prompt_log_probs(model, weights, bos), weights, fluency
                ).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_([theta], float(self.cfg["clip"]))
                optimizer.step()
                if (step + 1) % every == 0:
                    with torch.no_grad():
                        ids = theta.argmax(-1)
                        kl = inversion_objective(
                            target,
                            prompt_log_probs(model, ids, bos),
                            F.one_hot(ids, vocab).float(),
                            fluency,
                        )
                        per_prompt = kl.view(prompts, restarts)
                        low, which = per_prompt.min(dim=1)
                        better = low < best_kl
                        best_kl = torch.where(better, low, best_kl)
                        chosen = ids.view(prompts, restarts, length)[torch.arange(prompts), which]
                        best[better] = chosen[better]
                        improved = kl < own_best
                        own_best = torch.minimum(own_best, kl)
                        stale = torch.where(improved, 0, stale + 1)
                        reset = stale >= int(self.cfg["patience"])
                        if reset.any():
                            theta[reset] = initial(int(reset.sum()))
                            own_best[reset], stale[reset] = float("inf"), 0
                            state = optimizer.state[theta]
                            if state:
                                state["exp_avg"][reset] = 0
                                state["exp_avg_sq"][reset] = 0
                bar.update()
        return best
