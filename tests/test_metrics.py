"""Metrics against hand-computed values."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from metrics.attack_accuracy import attack_accuracy
from metrics.edge_ranking import (
    edge_auc,
    edge_auc_all_pairs,
    edge_average_precision,
    rank_auc,
    sample_non_edges,
)
from metrics.knn_distance import knn_feature_distance
from metrics.text_overlap import (
    bleu_signature,
    exact_match,
    exact_matches,
    mean_sentence_bleu,
    sentence_bleu_effective_order_scores,
    sentence_bleu_scores,
    token_set_f1,
    token_set_f1s,
    word_tokens,
)


def test_attack_accuracy_top1_and_top2():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 2.0], [1.0, 3.0, 2.0], [2.0, 0.0, 1.0]])
    targets = torch.tensor([0, 1, 2, 1])
    # top-1 predictions 0, 2, 1, 0 -> only the first is right.
    assert attack_accuracy(logits, targets, 1) == pytest.approx(0.25)
    # top-2 sets {0,1}, {2,1}, {1,2}, {0,2} -> right for rows 0, 1, 2.
    assert attack_accuracy(logits, targets, 2) == pytest.approx(0.75)
    assert attack_accuracy(logits, targets, 5) == 1.0  # k >= classes


def test_knn_distance_takes_nearest_private_image_of_the_same_class():
    recon = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    recon_labels = torch.tensor([0, 1])
    private = torch.tensor([[0.0, 1.0], [3.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    private_labels = torch.tensor([0, 0, 1, 1])
    # class 0: min(1, 9) = 1; class 1: min(0, 2) = 0 -> mean 0.5. The (0, 0) image of class 1
    # is closer to the first reconstruction but belongs to another class.
    assert knn_feature_distance(recon, recon_labels, private, private_labels) == pytest.approx(0.5)


def test_auc_and_average_precision_hand_computed():
    positives = np.array([0.9, 0.4])
    negatives = np.array([0.5, 0.1])
    # pairs (pos > neg): 0.9>0.5, 0.9>0.1, 0.4>0.1 -> 3 of 4.
    assert edge_auc(positives, negatives) == pytest.approx(0.75)
    # ranking 0.9(+) 0.5(-) 0.4(+) 0.1(-): AP = 0.5*1 + 0.5*(2/3).
    assert edge_average_precision(positives, negatives) == pytest.approx(0.5 + 1 / 3)
    assert edge_auc(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == pytest.approx(0.5)


def test_rank_auc_counts_ties_as_half_like_the_roc_curve():
    # positives 0.5, 0.5 against negatives 0.5, 0.2: pairs (pos > neg) 1 + 1, ties 1/2 + 1/2 -> 3/4
    assert rank_auc(np.array([0.5, 0.5, 0.5, 0.2]), np.array([1, 1, 0, 0])) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 20, 500).astype(float)  # many ties
    labels = rng.random(500) < 0.3
    assert rank_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    with pytest.raises(ValueError, match="positives and negatives"):
        rank_auc(np.array([0.1, 0.2]), np.array([0, 0]))


def test_non_edges_are_distinct_unordered_and_seeded():
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    sample = sample_non_edges(6, edges, 8, np.random.default_rng(0))
    assert len(sample) == 8 and (sample[:, 0] < sample[:, 1]).all()
    assert not {tuple(p) for p in sample.tolist()} & {tuple(p) for p in edges.tolist()}
    assert len({tuple(p) for p in sample.tolist()}) == 8
    again = sample_non_edges(6, edges, 8, np.random.default_rng(0))
    assert (sample == again).all()


def test_text_metrics_hand_computed():
    references = ["name: Ann Lee | city: Rome", "a b c d"]
    predictions = ["name: Ann Lee | city: Rome", "a b x"]
    assert mean_sentence_bleu([references[0]], [references[0]]) == pytest.approx(100.0)
    # set F1 of {a,b,x} vs {a,b,c,d}: p = 2/3, r = 1/2 -> F1 = 4/7; first pair F1 = 1.
    assert token_set_f1(predictions, references) == pytest.approx((1 + 4 / 7) / 2)
    assert exact_match(predictions, references) == pytest.approx(0.5)
    assert mean_sentence_bleu(["zzz"], ["a b c d"]) == pytest.approx(0.0)
    # Issue 30: "a b x" has 3 tokens, so no 4-gram: 0 under the papers' BLEU (effective order
    # off). With effective order (the old convention) p1 = 2/3, p2 = 1/2, p3 = 0 smoothed to
    # 100 / (2 * 1) = 50%; BP = exp(1 - 4/3) -> 100 * (2/3 * 1/2 * 1/2)^(1/3) * e^(-1/3).
    assert mean_sentence_bleu([predictions[1]], [references[1]]) == 0.0
    old = 100 * (2 / 3 * 1 / 2 * 1 / 2) ** (1 / 3) * math.exp(-1 / 3)  # 39.43
    assert sentence_bleu_effective_order_scores([predictions[1]], [references[1]]) == [
        pytest.approx(old)
    ]


def test_bleu_is_evaluate_sacrebleu_per_prompt_without_effective_order():
    # Hand values, 13a tokens. A 2-token hypothesis matching the reference's start:
    # papers (effective order off): orders 3 and 4 have no n-grams, precision 0 -> BLEU 0.
    # effective order on: p1 = 2/2, p2 = 1/1 -> 100, times BP = exp(1 - 5/2) -> 22.31.
    hyp, ref = "Ann Lee", "Ann Lee lives in Rome"
    assert sentence_bleu_scores([hyp], [ref]) == [0.0]
    assert sentence_bleu_effective_order_scores([hyp], [ref]) == [
        pytest.approx(100 * math.exp(-1.5))
    ]
    # The example, 26.4 against 0: 3 tokens, all of the reference's first 3, reference
    # of 7 (":" and "|" are 13a tokens): p1 = p2 = p3 = 100%, BP = exp(1 - 7/3) = 26.36.
    hyp, ref = "name: Ann", "name: Ann Lee | email:"
    assert sentence_bleu_scores([hyp], [ref]) == [0.0]
    assert sentence_bleu_effective_order_scores([hyp], [ref]) == [
        pytest.approx(100 * math.exp(1 - 7 / 3))
    ]
    # Even a perfect 2-token reconstruction scores 0 as the papers count (exact match says 1).
    assert sentence_bleu_scores(["Ann Lee"], ["Ann Lee"]) == [0.0]
    assert sentence_bleu_effective_order_scores(["Ann Lee"], ["Ann Lee"]) == [pytest.approx(100)]
    # From 4 tokens on the conventions agree: "a b c x" vs "a b c d e": p = 3/4, 2/3, 1/2 and
    # 4-grams 0/1 smoothed ("exp") to 100 / (2 * 1) = 50%; BP = exp(1 - 5/4).
    both = 100 * (3 / 4 * 2 / 3 * 1 / 2 * 1 / 2) ** (1 / 4) * math.exp(-1 / 4)  # 46.31
    assert sentence_bleu_scores(["a b c x"], ["a b c d e"]) == [pytest.approx(both)]
    assert sentence_bleu_effective_order_scores(["a b c x"], ["a b c d e"]) == [pytest.approx(both)]
    # Per prompt, then the mean (0 and 46.31): sacreBLEU's corpus BLEU over the two
    # pairs pools their n-gram counts and gives 32.28, which is not what vec2text reports.
    preds, refs = ["Ann Lee", "a b c x"], ["Ann Lee lives in Rome", "a b c d e"]
    assert mean_sentence_bleu(preds, refs) == pytest.approx(both / 2)
    assert "eff:no" in bleu_signature() and "tok:13a" in bleu_signature()
    assert "smooth:exp" in bleu_signature() and "case:mixed" in bleu_signature()


def test_token_f1_is_over_sets_of_nltk_word_tokens():
    # word_tokenize splits punctuation: {Hello , world .} vs {Hello world}: TP = 2,
    # P = 2/4, R = 2/2 -> F1 = 2/3 (the old whitespace split gave {Hello, world.} -> 0).
    assert word_tokens("Hello, world.") == ["Hello", ",", "world", "."]
    assert token_set_f1s(["Hello, world."], ["Hello world"]) == [pytest.approx(2 / 3)]
    # Sets, not multisets: {the} vs {the cat and dog}: P = 1, R = 1/4 -> F1 = 0.4. A Counter
    # overlap (SQuAD's F1) would give min(3, 2) = 2 common: P = 2/3, R = 2/5 -> F1 = 0.5.
    assert token_set_f1s(["the the the"], ["the cat and the dog"]) == [pytest.approx(0.4)]
    assert token_set_f1(["x"], ["y"]) == 0.0
    assert token_set_f1([""], [""]) == 0.0  # vec2text: TP = 0 -> F1 = 0
    # the records' prompts: ":" and "@" split off, the dots inside "Ann.Lee" and "x.com" stay
    assert word_tokens("name: Ann Lee | email: Ann.Lee@x.com") == [
        "name",
        ":",
        "Ann",
        "Lee",
        "|",
        "email",
        ":",
        "Ann.Lee",
        "@",
        "x.com",
    ]


def test_exact_match_compares_raw_strings():
    # vec2text compares the strings as they are: a trailing space is a miss (before issue 30
    # both sides were stripped and it counted as a match); so are a doubled space and case.
    preds = ["Ann Lee | email:", "Ann Lee | email: ", "Ann  Lee | email:", "ann Lee | email:"]
    assert exact_matches(preds, ["Ann Lee | email:"] * 4) == [1.0, 0.0, 0.0, 0.0]


def test_auc_all_pairs_by_hand():
    # 4 nodes, pairs (i<j): 01 02 03 12 13 23; edges 01 and 23.
    scores = np.array([[0, 0.9, 0.1, 0.4], [0, 0, 0.5, 0.2], [0, 0, 0, 0.3], [0, 0, 0, 0]])
    edges = np.array([[0, 1], [2, 3]])
    # edge scores 0.9 and 0.3; non-edges 0.1, 0.4, 0.5, 0.2. Pairs ranked right:
    # 0.9 beats all 4, 0.3 beats 0.1 and 0.2: 6 of 8.
    assert edge_auc_all_pairs(scores, edges) == pytest.approx(6 / 8)
