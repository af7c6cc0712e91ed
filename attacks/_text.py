"""What the text attacks share: the inversion objective between an observed (released)
next-token distribution and the model's (KL itself is ``metrics/kl_divergence.py``, which the
text tasks' utility uses too), and the target's next-token log-probabilities for token ids or
for relaxed (soft) tokens, with <|endoftext|> as the BOS the target was trained with."""

from __future__ import annotations

import math
from collections import Counter

import torch
import torch.nn.functional as F

from benchmark.methods import Attack
from metrics.kl_divergence import kl_to_log_q
from tasks.text import EOS, prompt_of


def public_texts(victims) -> list[str]:
    """The prompts of the PUBLIC records (attacker knowledge): each record up to its
    ``prompt_end``, or whole."""
    return [prompt_of(record, victims.prompt_end) for record in victims.public_records]


def public_prompts(victims) -> list[list[int]]:
    """:func:`public_texts` as token ids."""
    return [victims.tokenizer.encode(text).ids for text in public_texts(victims)]


def same_length_pool(public: list[list[int]], length: int, size: int) -> list[list[int]]:
    """Up to ``size`` public prompts of the secret's length; if none has it, the longer ones
    cut to it."""
    pool = [ids for ids in public if len(ids) == length]
    return (pool or [ids[:length] for ids in public if len(ids) > length])[:size]


class PublicBigram:
    """A bigram language model of the PUBLIC prompts (add-``smoothing`` estimates, BOS as the
    first context): the black-box attacker's stand-in for the fluency term of
    :func:`inversion_objective`, which needs the target's own likelihood of the prompt. Counts
    are kept sparse (GPT-2's vocabulary squared would be 10 GB dense)."""

    def __init__(self, prompts: list[list[int]], vocab: int, bos: int, smoothing: float):
        self.pairs: Counter = Counter()
        self.contexts: Counter = Counter()
        for ids in prompts:
            sequence = [bos, *ids]
            self.pairs.update(zip(sequence[:-1], sequence[1:]))
            self.contexts.update(sequence[:-1])
        self.vocab, self.bos, self.smoothing = vocab, bos, smoothing

    def nll(self, prompts: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per token of token-id prompts [B, L]."""
        k, vocab = self.smoothing, self.vocab
        out = []
        for ids in prompts.tolist():
            sequence = [self.bos, *ids]
            out.append(
                -sum(
                    math.log((self.pairs[a, b] + k) / (self.contexts[a] + k * vocab))
                    for a, b in zip(sequence[:-1], sequence[1:])
                )
                / len(ids)
            )
        return torch.tensor(out)


def bos_id(tokenizer) -> int:
    return tokenizer.token_to_id(EOS)


def prompt_log_probs(model, ids: torch.Tensor, bos: int) -> torch.Tensor:
    """log q(. | BOS, ids_<=l) at every position l = 0..L of token-id prompts [B, L]: row L is the
    released next-token distribution, rows 0..L-1 score the prompt's own tokens (fluency)."""
    full = torch.cat([torch.full((len(ids), 1), bos, dtype=torch.long), ids], dim=1)
    return F.log_softmax(model(input_ids=full).logits.float(), dim=-1)


def soft_prompt_log_probs(model, token_weights: torch.Tensor, bos: int) -> torch.Tensor:
    """:func:`prompt_log_probs` for a relaxed prompt: ``token_weights`` [B, L, V] are
    distributions over the vocabulary, embedded as their expectation under the token
    embedding matrix."""
    embedding = model.get_input_embeddings().weight
    soft = token_weights @ embedding
    start = embedding[bos].expand(len(soft), 1, -1)
    return F.log_softmax(
        model(inputs_embeds=torch.cat([start, soft], dim=1)).logits.float(), dim=-1
    )


def inversion_objective(
    observed: torch.Tensor, log_probs: torch.Tensor, token_weights: torch.Tensor, fluency: float
) -> torch.Tensor:
    """Per prompt: KL(p || q(. | BOS, x)) + fluency * (-1/L) sum_l log q(x_l | BOS, x_<l).

    The second term, the prompt's mean negative log-likelihood under the model, keeps the search
    among prompts the model finds natural: without it, prompts of gibberish match the released
    distribution as well as the secret does (measured on ``records``: KL 0.2 for gibberish,
    4.5 nats between two secrets). ``token_weights`` are one-hot rows for a discrete prompt."""
    nll = -(token_weights * log_probs[:, :-1]).sum(-1).mean(-1)
    return kl_to_log_q(observed, log_probs[:, -1]) + fluency * nll


def invert_by_length(victims, queries: int, invert) -> list[str]:
    """Run ``invert(observed, length, queries, starts)`` -> token ids [n, length] once per
    prompt length (one batch of same-length prompts each), with the query budget shared in
    proportion to the prompts; ``starts`` are the public prompts of that length. Decoded
    answers in the victims' order."""
    answers: list[str] = [""] * len(victims.observed)
    lengths = torch.tensor(victims.lengths)
    public = public_prompts(victims)
    for length in lengths.unique().tolist():
        rows = (lengths == length).nonzero().flatten()
        best = invert(
            victims.observed[rows],
            length,
            queries * len(rows) // len(lengths),
            same_length_pool(public, length, len(public)),
        )
        for row, ids in zip(rows.tolist(), best):
            answers[row] = victims.tokenizer.decode(ids.tolist())
    return answers


class WhiteBoxPromptInversion(Attack):
    """Base of the white-box attacks that optimise token ids against the observed distribution
    (relaxed-invert, gcg-invert): ``_invert`` is run once per prompt length."""

    def run(self, access, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        bos = bos_id(victims.tokenizer)
        return invert_by_length(
            victims,
            int(budget["queries"]),
            lambda observed, length, queries, starts: self._invert(
                access.model, bos, observed, length, queries, starts, generator
            ),
        )

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
        """Token ids [len(observed), length], one answer per observed distribution."""
        raise TypeError(f"{type(self).__name__} must implement _invert()")
