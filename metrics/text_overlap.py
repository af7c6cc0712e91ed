"""Prompt-reconstruction metrics with the conventions of Morris et al. (ICLR 2024).

- ``bleu``: mean over prompts of sentence-level sacreBLEU (0-100, default tokenizer 13a,
  exponential smoothing), the reconstruction as hypothesis and the true prompt as reference.
- ``token_f1``: mean over prompts of F1 between the SETS of whitespace word tokens (0-1).
- ``exact_match``: fraction of prompts reconstructed exactly, after stripping whitespace (0-1).
- ``fields_recovered``: fraction of the private fields the prompts hold (first name, last name)
  that appear, as whole words, in their reconstruction (0-1).
"""

from __future__ import annotations

import re

from sacrebleu.metrics import BLEU

from benchmark.registry import Citation, register_metric

LM_INVERSION = Citation(
    "Language Model Inversion", "Morris et al.", "ICLR", 2024, "https://arxiv.org/abs/2311.13647"
)

_SENTENCE_BLEU = BLEU(effective_order=True)


def bleu_signature() -> str:
    """sacreBLEU's signature of the sentence-level settings, for the record."""
    scorer = BLEU(effective_order=True)
    scorer.corpus_score(["a"], [["a"]])  # the signature needs the reference count
    return str(scorer.get_signature())


@register_metric(
    "bleu", higher_is_better=True, modalities=("text", "embedding"), citation=LM_INVERSION
)
def mean_sentence_bleu(predictions: list[str], references: list[str]) -> float:
    scores = sentence_bleu_scores(predictions, references)
    return sum(scores) / len(scores)


def sentence_bleu_scores(predictions: list[str], references: list[str]) -> list[float]:
    """Sentence-level BLEU per prompt."""
    return [_SENTENCE_BLEU.sentence_score(p, [r]).score for p, r in zip(predictions, references)]


def _set_f1(prediction: str, reference: str) -> float:
    predicted, true = set(prediction.split()), set(reference.split())
    overlap = len(predicted & true)
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(true)
    return 2 * precision * recall / (precision + recall)


@register_metric(
    "token_f1", higher_is_better=True, modalities=("text", "embedding"), citation=LM_INVERSION
)
def token_set_f1(predictions: list[str], references: list[str]) -> float:
    return sum(token_set_f1s(predictions, references)) / len(predictions)


def token_set_f1s(predictions: list[str], references: list[str]) -> list[float]:
    """Token-set F1 per prompt."""
    return list(map(_set_f1, predictions, references))


@register_metric(
    "exact_match", higher_is_better=True, modalities=("text", "embedding"), citation=LM_INVERSION
)
def exact_match(predictions: list[str], references: list[str]) -> float:
    return sum(exact_matches(predictions, references)) / len(predictions)


def exact_matches(predictions: list[str], references: list[str]) -> list[float]:
    """1.0 per prompt reconstructed exactly (after stripping whitespace), else 0.0."""
    return [float(p.strip() == r.strip()) for p, r in zip(predictions, references)]


@register_metric(
    "fields_recovered",
    higher_is_better=True,
    modalities=("text", "embedding"),
    citation=LM_INVERSION,
)
def fields_recovered(predictions: list[str], fields: list[dict[str, str]]) -> float:
    found = total = 0
    for prediction, values in zip(predictions, fields):
        total += len(values)
        found += _fields_found(prediction, values)
    return found / total


def fields_recovered_per_prompt(
    predictions: list[str], fields: list[dict[str, str]]
) -> list[float]:
    """The share of each prompt's fields its reconstruction recovers (their mean is
    ``fields_recovered`` when every prompt holds as many fields, as in the records and
    embeddings tasks: a first and a last name)."""
    return [
        _fields_found(p, values) / max(len(values), 1) for p, values in zip(predictions, fields)
    ]


def _fields_found(prediction: str, values: dict[str, str]) -> int:
    return sum(
        re.search(rf"(?<!\w){re.escape(value)}(?!\w)", prediction) is not None
        for value in values.values()
    )
