"""Text prompt inversion on ``records``: the objective's pieces against hand-computed values,
access enforced on what the attacker observes, and the text issue's acceptance at the mini
budget (every attack beats the constant public prompt, except the extraction strings, which a
records model does not follow; the white-box relaxed inversion beats the black-box search at
equal queries; top-1 release and rounding of log-probabilities lower the best score-based attack,
top-1 release and rounding of probabilities the black-box search; learned inversion from
generated text beats the extraction strings)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from attacks._text import PublicBigram, inversion_objective, prompt_log_probs
from benchmark.access import WhiteBoxAccess
from benchmark.cli import main
from benchmark.methods import Attack
from benchmark.registry import ATTACKS, register_attack
from benchmark.runner import run_cell
from defenses.temperature import Temperature
from metrics.text_overlap import fields_recovered
from tasks.text import generate_text, private_fields, prompt_of
from tests.conftest import SMOKE, compose, sweep


def test_temperature_releases_the_tempered_distribution_and_keeps_the_argmax():
    released = Temperature({"temperature": 2.0}).transform_output(
        torch.tensor([[0.5, 0.25, 0.25]]), torch.Generator()
    )
    # softmax(log p / 2) = sqrt(p) / sum sqrt(p) = [0.7071, 0.5, 0.5] / 1.7071
    assert torch.allclose(released, torch.tensor([[0.41421, 0.29289, 0.29289]]), atol=1e-5)
    with pytest.raises(ValueError, match="must be > 0"):
        Temperature({"temperature": 0}).transform_output(torch.ones(1, 2) / 2, torch.Generator())


def test_fields_recovered_counts_whole_words_of_each_private_field():
    record = "name: Ana Lee | email: Ana.Lee@gmail.com | city: X | job: Y | phone: 1"
    assert prompt_of(record) == "name: Ana Lee | email:"
    fields = [private_fields(record)] * 3
    assert fields[0] == {"first_name": "Ana", "last_name": "Lee"}
    # first name only; both; "Anabel" and "Leeds" are not the fields
    assert fields_recovered(
        ["name: Ana Smith | email:", "name: Ana Lee | email:", "name: Anabel Leeds | email:"],
        fields,
    ) == pytest.approx(3 / 6)


def test_public_bigram_nll_by_hand():
    # prompts [1, 2] and [1, 3] after BOS 0, add-0.5 smoothing over a vocabulary of 4:
    # P(1 | 0) = (2 + 0.5) / (2 + 2) = 0.625, P(2 | 1) = (1 + 0.5) / (2 + 2) = 0.375
    bigram = PublicBigram([[1, 2], [1, 3]], vocab=4, bos=0, smoothing=0.5)
    expected = -(math.log(0.625) + math.log(0.375)) / 2
    assert bigram.nll(torch.tensor([[1, 2]])).item() == pytest.approx(expected, rel=1e-6)


def _tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(
        GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    ).eval()


def test_inversion_objective_is_kl_plus_fluency_and_zero_kl_at_the_secret():
    model = _tiny_gpt2()
    secret = torch.tensor([[3, 5, 7]])
    with torch.no_grad():
        log_probs = prompt_log_probs(model, secret, bos=0)
        observed = log_probs[:, -1].exp()
        one_hot = torch.nn.functional.one_hot(secret, 11).float()
        nll = -log_probs[0, torch.arange(3), secret[0]].mean()
        assert inversion_objective(observed, log_probs, one_hot, 0.0).item() == pytest.approx(
            0.0, abs=1e-5
        )
        assert inversion_objective(observed, log_probs, one_hot, 2.0).item() == pytest.approx(
            2 * nll.item(), rel=1e-5
        )


def test_white_box_access_counts_rows_passed_by_keyword():
    model = _tiny_gpt2()
    access = WhiteBoxAccess(model, lambda q: q)
    with torch.no_grad():
        model(input_ids=torch.zeros(4, 3, dtype=torch.long))
        model(inputs_embeds=torch.zeros(5, 3, 8))
    access.close()
    assert access.queries == 9


class _RecordsObservation(Attack):
    """Answers the public prompt; keeps what it was shown of the secrets."""

    seen: list[torch.Tensor] = []

    def run(self, access, victims, prior, budget, generator):
        observed = victims.observed
        _RecordsObservation.seen.append(
            observed.clone() if isinstance(observed, torch.Tensor) else list(observed)
        )
        if access.access == "label":  # a text-only API: one query per prompt, text back
            public = [[5, 6], [7]]
            texts = access(public)
            assert all(isinstance(t, str) for t in texts) and access.queries == len(public)
        return ["name: Ana Lee | email:"] * len(victims.observed)


def _observe(access: str):
    """One smoke records cell of the observer at ``access``: its record and what it saw."""
    register_attack("test-observer", modalities=("text",), access=access)(_RecordsObservation)
    try:
        _RecordsObservation.seen.clear()
        record = run_cell(
            compose(
                "task=records",
                "attack=prompt-search",
                "defense=none",
                "attack.name=test-observer",
                *SMOKE,
            )
        )
    finally:
        ATTACKS._entries.pop("test-observer")
    assert record["status"] == "ok", record["error"]
    (observed,) = _RecordsObservation.seen
    return record, observed


@pytest.mark.parametrize("access,nonzero", [("scores", None), ("topk", 5), ("none", 0)])
def test_what_a_text_attack_observes_is_reduced_to_its_access_level(workdir, access, nonzero):
    record, observed = _observe(access)
    counts = (observed > 0).sum(dim=1)
    if nonzero is None:  # the full distribution
        assert (counts > 5).all() and torch.allclose(observed.sum(1), torch.ones(len(observed)))
    else:
        assert (counts == nonzero).all()


def test_text_only_access_observes_the_greedy_continuation_of_each_secret(workdir):
    record, observed = _observe("label")
    assert record["cost"]["queries"] == 2  # the two public prompts the observer sent
    assert len(observed) == record["budget"]["prompts"]
    assert all(isinstance(text, str) for text in observed) and any(observed)


def test_extraction_prompt_records_the_string_it_sent_and_pays_one_query_per_prompt(workdir):
    record = run_cell(compose("task=records", "attack=extraction-prompt", "defense=none", *SMOKE))
    assert record["status"] == "ok", record["error"]
    strings = record["config"]["attack"]["strings"]
    details = record["attack_details"]
    assert details["string"] in strings and set(details["calibration_bleu"]) == set(strings)
    assert details["string"] == max(strings, key=details["calibration_bleu"].get)
    # every string after every calibration prompt, then the chosen one after every secret
    calibration = min(
        record["config"]["attack"]["calibration"], record["config"]["task"]["sizes"]["public"]
    )
    assert record["cost"]["queries"] == len(strings) * calibration + record["budget"]["prompts"]
    assert all(isinstance(p["reconstructed"], str) for p in record["examples"]["pairs"])


class _Bigrams:
    """A released model over tokens 0..4 (4 = <|endoftext|>): after token t it puts 0.7 on
    t + 1 and 0.3 on t + 2 (mod 5)."""

    def __call__(self, prompts) -> torch.Tensor:
        out = torch.zeros(len(prompts), 5)
        for row, prompt in enumerate(prompts):
            out[row, (prompt[-1] + 1) % 5] = 0.7
            out[row, (prompt[-1] + 2) % 5] = 0.3
        return out


class _Digits:
    def decode(self, ids):
        return " ".join(map(str, ids))


def test_generated_text_follows_the_released_argmax_and_stops_at_eos_or_the_limits():
    release = _Bigrams()
    # greedy from 0: 1 2 3, then 4 is <|endoftext|>
    assert generate_text(
        release, [[0], [2]], _Digits(), eos=4, tokens=10, limit=20, generator=None
    ) == ["1 2 3", "3"]
    # at most `tokens` tokens, and at most `limit` tokens of context
    assert generate_text(release, [[0]], _Digits(), 4, tokens=2, limit=20, generator=None) == [
        "1 2"
    ]
    assert generate_text(
        release, [[0, 0, 0]], _Digits(), 4, tokens=10, limit=4, generator=None
    ) == ["1"]
    # sampled: t + 2 is drawn about 30% of the time
    samples = generate_text(
        release,
        [[0]] * 2000,
        _Digits(),
        4,
        tokens=1,
        limit=20,
        generator=torch.Generator().manual_seed(0),
    )
    assert 0.26 < samples.count("2") / 2000 < 0.34


def test_after_secret_queries_append_to_a_secret_the_attacker_never_reads():
    from tasks.text import AfterSecret, Records

    task = Records.__new__(Records)
    task._secret_ids = [[10, 11], [12]]
    assert task.resolve(AfterSecret(1, (7, 8))) == [12, 7, 8]
    assert task.resolve([3, 4]) == [3, 4]
    assert "10" not in repr(AfterSecret(0, (7,)))


def test_words_round_trip_and_the_inverter_copies_words_it_never_generated():
    from attacks._inverter import Example, LearnedInverter, join_words, split_words

    text = "name: Ana Lee | email: Ana.Lee@mail.com"
    assert join_words(split_words(text)) == text
    assert [w for _, w in split_words("Ana.Lee@mail")] == ["Ana", ".", "Lee", "@", "mail"]
    # released text "x NAME y" -> prompt "hello NAME": test names never appear in training,
    # so only the copy distribution can write them
    names = [f"n{i}" for i in range(80)]
    train = [Example(["x", n, "y"], prompt=split_words(f"hello {n}")) for n in names[:60]]
    inverter = LearnedInverter({"width": 32, "epochs": 40, "batch_size": 16, "lr": 0.01}).fit(
        train, torch.Generator().manual_seed(0)
    )
    answers = inverter.invert([Example(["x", n, "y"]) for n in names[60:]], max_words=4)
    assert sum(a == f"hello {n}" for a, n in zip(answers, names[60:])) >= 18, answers


# Acceptance, at the mini budget ----------------------------------------------------------
ATTACKS_UNDER_TEST = [
    "public-prompt",
    "prompt-search",
    "relaxed-invert",
    "gcg-invert",
    "logit2prompt",
    "output2prompt",
]
SCORE_BASED = ["prompt-search", "logit2prompt"]
# extraction-prompt is run too, but the records model follows no instruction: its continuations
# score below the constant answer (18.4 vs 30.7 BLEU); the learned text-only inversion must beat it


def _bench(root, cache, *overrides: str) -> dict:
    return {
        (r["attack"], r["defense"]): r for r in sweep(root, "task=records", *overrides, cache=cache)
    }


@pytest.fixture(scope="module")
def text_records(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    records = _bench(
        root / "main",
        root / "cache",
        f"attack=[{','.join([*ATTACKS_UNDER_TEST, 'extraction-prompt'])}]",
        "defense=[none,rounding]",
    )
    # on text, rounding rounds log-probabilities (space: auto); probabilities apart
    for label, overrides in (
        ("topk-release k=1", ("defense=topk-release", "defense.k=1")),
        ("rounding probs", ("defense=rounding", "defense.space=probs")),
    ):
        records.update(
            {
                (attack, label): record
                for (attack, _), record in _bench(
                    root / label.replace(" ", "-"),
                    root / "cache",
                    f"attack=[{','.join(SCORE_BASED)}]",
                    *overrides,
                ).items()
            }
        )
    return records


def bleu(record: dict) -> float:
    return record["metrics"]["bleu"]["value"]


@pytest.mark.slow
def test_every_attack_beats_the_constant_public_prompt(text_records):
    floor = bleu(text_records[("public-prompt", "none")])
    for attack in ATTACKS_UNDER_TEST[1:]:
        record = text_records[(attack, "none")]
        assert bleu(record) > floor + 2, (attack, bleu(record), floor)
        assert record["cost"]["queries"] <= record["budget"]["queries"]


@pytest.mark.slow
def test_white_box_relaxed_inversion_beats_black_box_search_at_equal_queries(text_records):
    relaxed, search = (
        text_records[("relaxed-invert", "none")],
        text_records[("prompt-search", "none")],
    )
    assert relaxed["budget"]["queries"] == search["budget"]["queries"]
    assert relaxed["cost"]["queries"] <= relaxed["budget"]["queries"]
    assert bleu(relaxed) > bleu(search) + 2
    # the name the released distribution carries is recovered
    assert relaxed["metrics"]["fields_recovered"]["value"] > 0.15


@pytest.mark.slow
def test_learned_inversion_from_generated_text_beats_the_extraction_strings(text_records):
    """Text-only access (Zhang et al. 2024's comparison): output2prompt, trained on public
    prompts' continuations, against the extraction strings of the same access level."""
    learned, strings = (
        text_records[("output2prompt", "none")],
        text_records[("extraction-prompt", "none")],
    )
    assert learned["access"] == strings["access"] == "label"
    assert bleu(learned) > bleu(strings) + 10
    assert learned["metrics"]["fields_recovered"]["value"] > 0.3


@pytest.mark.slow
@pytest.mark.parametrize("defense", ["rounding", "topk-release k=1"])
def test_output_defenses_lower_the_best_score_based_attack(text_records, defense):
    """The issue's criterion: rounding (1 decimal of log-probabilities) and top-1 release lower
    the BLEU of the best attack that reads released distributions (logit2prompt here)."""
    best = max(SCORE_BASED, key=lambda attack: bleu(text_records[(attack, "none")]))
    assert text_records[(best, "none")]["access"] == "scores"
    defended = text_records[(best, defense)]
    assert bleu(defended) < bleu(text_records[(best, "none")]), (best, defense)
    assert defended["utility"]["kl_to_true"]["value"] > 0  # at a cost the record shows


@pytest.mark.slow
@pytest.mark.parametrize("defense", ["rounding probs", "topk-release k=1"])
def test_output_defenses_lower_the_black_box_search(text_records, defense):
    undefended = bleu(text_records[("prompt-search", "none")])
    defended = text_records[("prompt-search", defense)]
    assert bleu(defended) < undefended
    assert defended["utility"]["kl_to_true"]["value"] > 0


# gpt2-prompts: the real loading path, with a small random GPT-2 of GPT-2's vocabulary --------
@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    """A randomly initialised GPT-2 of the real vocabulary saved by save_pretrained, the real
    tokenizer files beside it, and a JSON-lines prompts file."""
    import shutil

    from faker import Faker
    from transformers import GPT2Config, GPT2LMHeadModel

    from tests.conftest import SHARED_DATA

    if not (SHARED_DATA / "gpt2" / "vocab.json").exists():
        pytest.skip("the GPT-2 tokenizer of ../shared/data/gpt2 is absent")
    root = tmp_path_factory.mktemp("gpt2")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=64)).save_pretrained(
        root / "gpt2"
    )
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(SHARED_DATA / "gpt2" / name, root / "gpt2" / name)
    fake = Faker("en_US")
    fake.seed_instance(0)
    lines = [
        json.dumps({"text": f"My name is {fake.name()} and I live in {fake.city()}."})
        for _ in range(160)
    ]
    (root / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _gpt2_overrides(root, *extra):
    return [
        *SMOKE,
        "task=gpt2-prompts",
        f"task.model_dir={root / 'gpt2'}",
        f"task.prompts_file={root / 'prompts.jsonl'}",
        *extra,
    ]


@pytest.mark.slow
def test_gpt2_prompts_loads_through_from_pretrained_and_records_the_files_hashes(
    workdir, gpt2_folder
):
    from benchmark.cache import file_sha256

    assert (
        main(
            [
                "bench",
                *_gpt2_overrides(gpt2_folder, "task.model_sha256=null"),
                "attack=[public-prompt,prompt-search,extraction-prompt,output2prompt]",
                "defense=none",
            ]
        )
        == 0
    )
    for attack in ("public-prompt", "prompt-search", "extraction-prompt", "output2prompt"):
        record = json.loads(
            (workdir / "results/smoke/gpt2-prompts" / f"{attack}__none__s0.json").read_text()
        )
        assert record["status"] == "ok", record["error"]
        target = record["provenance"]["target"]
        assert target["prompts_sha256"] == file_sha256(gpt2_folder / "prompts.jsonl")
        assert target["model_sha256"] == file_sha256(gpt2_folder / "gpt2/model.safetensors")
        assert target["pretrained"] == str(gpt2_folder / "gpt2")
        assert 0 <= record["metrics"]["bleu"]["value"] <= 100
        assert "fields_recovered" not in record["metrics"]  # free text names no fields
    assert record["cost"]["queries"] <= record["budget"]["queries"]


def test_gpt2_prompts_without_weights_names_the_files_and_the_published_sha256(
    workdir, gpt2_folder, tmp_path, capsys
):
    from tasks.text import GPT2_SHA256

    empty = tmp_path / "nothing"
    empty.mkdir()
    assert (
        main(
            [
                "run",
                *SMOKE,
                "task=gpt2-prompts",
                f"task.model_dir={empty}",
                f"task.prompts_file={gpt2_folder / 'prompts.jsonl'}",
                "attack=public-prompt",
                "defense=none",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert str(empty / "model.safetensors") in err and GPT2_SHA256 in err
    # a GPT-2 that is not the published one is refused unless task.model_sha256=null
    assert main(["run", *_gpt2_overrides(gpt2_folder), "attack=public-prompt", "defense=none"]) == 2
    assert f"expected {GPT2_SHA256}" in capsys.readouterr().err
    # `invbench data gpt2` offline says where to fetch what
    assert main(["data", "gpt2"]) == 2
    assert "huggingface.co/openai-community/gpt2" in capsys.readouterr().err


def test_prompts_file_with_another_column_says_which_setting_to_change(tmp_path):
    from tasks.text import read_prompts

    (tmp_path / "p.csv").write_text("prompt\nhello world\n")
    with pytest.raises(ValueError, match="has no column 'text'.*task.text_column"):
        read_prompts(tmp_path / "p.csv", "text")
    assert read_prompts(tmp_path / "p.csv", "prompt") == ["hello world"]
