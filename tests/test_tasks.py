"""Tasks: the splits and the data they promise, on generated and real bytes."""

import numpy as np
import pytest
import torch

from benchmark.errors import MissingDataError
from benchmark.runner import build_task
from tests.conftest import SHARED_DATA, compose, needs_shared_data


def _task(*overrides):
    return build_task(compose(*overrides))


def test_sbm_citation_has_coras_shape_and_is_deterministic(workdir):
    graph = _task("task=sbm-citation").graph()
    assert graph.x.shape == (2708, 1433) and int(graph.y.max()) + 1 == 7
    assert set(np.unique(graph.x.numpy())) <= {0.0, 1.0}
    assert len(graph.edges) == 5278 and (graph.edges[:, 0] < graph.edges[:, 1]).all()
    labels = graph.y.numpy()
    homophily = (labels[graph.edges[:, 0]] == labels[graph.edges[:, 1]]).mean()
    assert 0.75 <= homophily <= 0.85
    assert 10 <= graph.x.sum(1).mean() <= 25  # sparse bag of words, Cora's ~18 words
    # Features carry the class: same-class nodes share more words than other pairs.
    same = (graph.x[labels == 0] @ graph.x[labels == 0].T).mean()
    other = (graph.x[labels == 0] @ graph.x[labels == 1].T).mean()
    assert same > 1.5 * other
    again = _task("task=sbm-citation").graph()
    assert np.array_equal(graph.edges, again.edges) and torch.equal(graph.x, again.x)
    other_seed = _task("task=sbm-citation", "seed=1").graph()
    assert not np.array_equal(graph.edges, other_seed.edges)


def test_digits_private_and_public_classes_are_disjoint(workdir):
    task = _task("task=digits")
    split = task._splits()
    assert split["train_x"].shape[1:] == (1, 16, 16)  # the mini resolution (digits.yaml)
    assert set(split["train_y"].tolist()) == set(range(5)) == set(split["test_y"].tolist())
    assert 0.0 <= float(split["train_x"].min()) and float(split["train_x"].max()) <= 1.0
    # public images are exactly those of classes 5-9 (no private image leaks into the prior)
    from sklearn.datasets import load_digits

    assert len(split["public_x"]) == int((load_digits().target >= 5).sum())
    assert len(split["train_x"]) + len(split["test_x"]) == int((load_digits().target < 5).sum())


def test_records_sets_are_disjoint_and_secret_prompts_unseen(workdir):
    task = _task("task=records")
    sets = task.splits()
    assert len(set(sets["train"]) & set(sets["private"])) == 0
    assert len(set(sets["public"]) & (set(sets["train"]) | set(sets["private"]))) == 0
    assert all(r.startswith("name: ") and "phone: " in r for r in sets["private"][:10])
    tokenizer = task.tokenizer()
    for record, prompt in zip(sets["private"], task.secret_prompts()):
        # the prompt is the record up to its "email:", whose address repeats the name
        first, last = record[len("name: ") : record.index(" |")].split(" ", 1)
        assert tokenizer.decode(prompt) == f"name: {first} {last} | email:"
        assert f"email: {first}.{last}@" in record
        assert tokenizer.encode(record).ids[: len(prompt)] == prompt


def test_cora_without_data_names_the_missing_files(workdir):
    with pytest.raises(MissingDataError) as error:
        _task("task=cora")
    message = str(error.value)
    assert "planetoid/Cora/raw/ind.cora.graph" in message and "INVBENCH_DATA" in message


@needs_shared_data
def test_a_corrupted_cora_file_is_refused_with_its_expected_hash(workdir):
    import shutil

    raw = workdir / "data/planetoid/Cora/raw"
    shutil.copytree(SHARED_DATA / "planetoid/Cora/raw", raw)
    (raw / "ind.cora.graph").chmod(0o644)
    (raw / "ind.cora.graph").write_bytes(b"not a pickle")
    with pytest.raises(MissingDataError) as error:
        _task("task=cora")
    assert "sha256 mismatch" in str(error.value) and "ind.cora.graph" in str(error.value)
    assert "58f13302f39dde88" in str(error.value)


@needs_shared_data
def test_cora_reads_the_real_planetoid_files(workdir):
    graph = _task("task=cora", f"paths.data={SHARED_DATA}").graph()
    assert graph.x.shape == (2708, 1433) and len(graph.edges) == 5278
    assert int(graph.train_mask.sum()) == 140 and int(graph.test_mask.sum()) == 1000


def test_pubmed_without_data_names_the_missing_files(workdir):
    with pytest.raises(MissingDataError) as error:
        _task("task=pubmed")
    assert "planetoid/PubMed/raw/ind.pubmed.x" in str(error.value)


@needs_shared_data
def test_a_random_split_is_drawn_from_the_seed_and_named(workdir):
    public = _task("task=cora", f"paths.data={SHARED_DATA}").graph()
    drawn = _task("task=cora", "task.split=random", f"paths.data={SHARED_DATA}").graph()
    again = _task("task=cora", "task.split=random", f"paths.data={SHARED_DATA}").graph()
    other = _task("task=cora", "task.split=random", "seed=1", f"paths.data={SHARED_DATA}").graph()
    assert drawn.split.startswith("random") and public.split == "public (Planetoid)"
    assert int(drawn.train_mask.sum()) == 140 and int(drawn.test_mask.sum()) == 1000
    assert not (drawn.train_mask & drawn.test_mask).any()
    assert torch.equal(drawn.train_mask, again.train_mask)
    assert not torch.equal(drawn.train_mask, public.train_mask)
    assert not torch.equal(drawn.train_mask, other.train_mask)


@needs_shared_data
def test_records_with_the_real_gpt2_tokenizer(workdir):
    task = _task("task=records", f"task.tokenizer_path={SHARED_DATA / 'gpt2'}")
    assert task.tokenizer().get_vocab_size() == 50257
    model = task.build_target()
    assert model.config.vocab_size == 50257
    probs = task.probs_fn(model.eval())([task.secret_prompts()[0]])
    assert probs.shape == (1, 50257) and torch.allclose(probs.sum(), torch.tensor(1.0))
