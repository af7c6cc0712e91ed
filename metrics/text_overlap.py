"""Prompt-reconstruction metrics, computed as the papers' own code computes them.

Morris et al.'s "Language Model Inversion" (ICLR 2024) and "Text Embeddings Reveal (Almost) As
Much As Text" (EMNLP 2023, vec2text) share one scorer: the README of jxmorris12/vec2text says
the repository holds the code of both papers, and its logit-inversion trainer
(vec2text/trainers/inversion_from_logits.py) inherits ``BaseTrainer._text_comparison_metrics``
(vec2text/trainers/base.py, lines 263-366 at commit e5022f169fa9). References below are to that
file at that commit, and to huggingface/evaluate's metrics/sacrebleu/sacrebleu.py at a7dd338386a4.
In both, the reconstruction is the prediction (hypothesis) and the true prompt the reference.

- ``bleu``: mean over prompts of sacreBLEU (0-100) computed on ONE prompt at a time with the
  settings of Hugging Face ``evaluate``'s "sacrebleu" metric. vec2text loads it with
  ``evaluate.load("sacrebleu")`` (base.py:64) and calls
  ``compute(predictions=[p], references=[r])["score"]`` once per prompt (base.py:335-339),
  then averages. ``evaluate`` passes its defaults to ``sacrebleu.corpus_bleu`` (sacrebleu.py:
  140-168): smooth_method "exp", smooth_value None, force False, lowercase False, tokenizer
  13a, use_effective_order False; a corpus of one sentence is that sentence's BLEU.
  Effective order off means all four n-gram orders count even when the hypothesis has fewer
  than 4 tokens (13a tokens): an order it has no n-grams of gets precision 0 and the score is
  0, however well the tokens match (a perfect 2-token reconstruction scores 0). From 4 tokens
  on, effective order changes nothing (exponential smoothing fills orders without matches).
- ``bleu`` under the convention this module used before (sacreBLEU's recommended
  sentence-level setting, ``BLEU(effective_order=True)``: only the orders the hypothesis has
  count, so "Ann Lee" against "Ann Lee lives in Rome" scores 22.3 instead of 0) is kept as
  ``sentence_bleu_effective_order_scores``; it is not a registered metric and no task
  records it.
- ``token_f1``: mean over prompts of F1 between the SETS of ``nltk.word_tokenize`` tokens
  (0-1): base.py:289-290 tokenize, 294-304 take ``set(...)`` of each side, TP = size of the
  intersection, precision and recall over the two set sizes (a token repeated counts once; a
  multiset/Counter overlap as in SQuAD's F1 would differ), F1 = 2PR/(P+R), 0 without overlap
  (vec2text's 1e-20 guards change nothing else). ``word_tokenize`` splits punctuation
  ("Hello, world." -> Hello , world .), where the whitespace split used before did not.
  nltk's ``word_tokenize(text)`` first splits sentences with the punkt model, which cannot be
  downloaded here, then runs its Treebank word tokenizer on each sentence; we call
  ``word_tokenize(text, preserve_line=True)``, the same Treebank tokenizer on the whole text
  without the punkt step. The tokens are identical whenever punkt finds no sentence boundary
  inside the text, as for the one-line records prompts here ("name: Ann Lee | email:"); on a
  text of several sentences the period ending an inner sentence stays on its word ("it." where
  punkt would give "it", "."), the last one is split either way.
- ``exact_match``: fraction of prompts whose reconstruction equals the true prompt as raw
  strings, whitespace included (base.py:350, ``np.array(predictions) == np.array(references)``,
  which strips nothing). Before, both sides were stripped first.
- ``fields_recovered``: fraction of the private fields the prompts hold (first name, last name)
  that appear, as whole words, in their reconstruction (0-1). This benchmark's own metric.
"""

from __future__ import annotations

import functools
import re

from sacrebleu.metrics import BLEU

from benchmark.registry import Citation, register_metric

LM_INVERSION = Citation(
    "Language Model Inversion", "Morris et al.", "ICLR", 2024, "https://arxiv.org/abs/2311.13647"
)

# evaluate's "sacrebleu" defaults (metrics/sacrebleu/sacrebleu.py:144-149), spelt out.
_PAPER_BLEU = BLEU(
    smooth_method="exp",
    smooth_value=None,
    force=False,
    lowercase=False,
    tokenize="13a",
    effective_order=False,
)
_EFFECTIVE_ORDER_BLEU = BLEU(effective_order=True)


def bleu_signature() -> str:
    """sacreBLEU's signature of the per-prompt settings of ``bleu``, for the record."""
    scorer = BLEU(smooth_method="exp", tokenize="13a", effective_order=False)
    scorer.corpus_score(["a"], [["a"]])  # the signature needs the reference count
    return str(scorer.get_signature())


@register_metric(
    "bleu", higher_is_better=True, modalities=("text", "embedding"), citation=LM_INVERSION
)
def mean_sentence_bleu(predictions: list[str], references: list[str]) -> float:
    """Mean over prompts of the papers' per-prompt BLEU (``sentence_bleu_scores``)."""
    scores = sentence_bleu_scores(predictions, references)
    return sum(scores) / len(scores)


def sentence_bleu_scores(predictions: list[str], references: list[str]) -> list[float]:
    """BLEU per prompt as vec2text computes it: evaluate's sacrebleu on a one-sentence
    corpus, effective order off (0 for a hypothesis of fewer than 4 tokens)."""
    return [_PAPER_BLEU.corpus_score([p], [[r]]).score for p, r in zip(predictions, references)]


def sentence_bleu_effective_order_scores(
    predictions: list[str], references: list[str]
) -> list[float]:
    """BLEU per prompt with sacreBLEU's sentence-level effective order (this module's
    convention before issue 30): orders the hypothesis has no n-grams of are left out."""
    return [
        _EFFECTIVE_ORDER_BLEU.sentence_score(p, [r]).score for p, r in zip(predictions, references)
    ]


@functools.cache
def _word_tokenizer():
    # nltk takes seconds to import: only when a token F1 is computed
    from nltk.tokenize import word_tokenize

    return functools.partial(word_tokenize, preserve_line=True)


def word_tokens(text: str) -> list[str]:
    """``nltk.word_tokenize`` tokens without punkt's sentence split (see the module's doc)."""
    return _word_tokenizer()(text)


def _set_f1(prediction: str, reference: str) -> float:
    predicted, true = set(word_tokens(prediction)), set(word_tokens(reference))
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
    """F1 of the sets of word tokens per prompt, as vec2text's ``token_set_f1``."""
    return list(map(_set_f1, predictions, references))


@register_metric(
    "exact_match", higher_is_better=True, modalities=("text", "embedding"), citation=LM_INVERSION
)
def exact_match(predictions: list[str], references: list[str]) -> float:
    return sum(exact_matches(predictions, references)) / len(predictions)


def exact_matches(predictions: list[str], references: list[str]) -> list[float]:
    """1.0 per prompt reconstructed exactly (raw strings, whitespace counts), else 0.0."""
    return [float(p == r) for p, r in zip(predictions, references)]


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
