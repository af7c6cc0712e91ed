"""The artifact cache trains once, detects corruption by hash, and never unpickles."""

import os
import pickle

import pytest
import torch

from benchmark.cache import WEIGHTS, ArtifactCache, load_checkpoint


class Bomb:
    """A pickle payload that creates a file when unpickled."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _train(module):
    with torch.no_grad():
        module.weight.fill_(0.5)
    return {"test_accuracy": 1.0}


def test_trains_once_then_loads_the_same_weights(tmp_path):
    cache = ArtifactCache(tmp_path)
    first, meta, hit = cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    assert not hit and meta["test_accuracy"] == 1.0
    second, _, hit = cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    assert hit and torch.equal(first.weight, second.weight)
    _, _, hit = cache.get_or_train("target", {"a": 2}, lambda: torch.nn.Linear(2, 2), _train)
    assert not hit
    assert [t["config"] for t in cache.trainings()] == [{"a": 1}, {"a": 2}]


def test_a_loaded_artifact_predicts_like_the_trained_one(tmp_path):
    """Batch norm in train mode would answer with batch statistics (and update its running
    ones): a cache hit must come back in eval mode, as a fresh training does."""

    def build():
        return torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))

    def train(module):
        module.train()
        module(torch.randn(64, 3) * 5 + 2)  # moves the running statistics
        return {}

    cache = ArtifactCache(tmp_path)
    fresh, _, hit = cache.get_or_train("target", {"bn": 1}, build, train)
    assert not hit and not fresh.training
    loaded, _, hit = cache.get_or_train("target", {"bn": 1}, build, train)
    assert hit and not loaded.training
    batch = torch.randn(4, 3)
    assert torch.allclose(fresh(batch), loaded(batch))


def _only_artifact(cache_root):
    (directory,) = [p for p in (cache_root / "target").iterdir() if p.is_dir()]
    return directory


def test_truncated_artifact_is_detected_and_rebuilt(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    weights = _only_artifact(tmp_path) / WEIGHTS
    weights.write_bytes(weights.read_bytes()[:40])
    module, _, hit = cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    assert not hit and torch.all(module.weight == 0.5)
    assert len(cache.trainings()) == 2


def test_malicious_pickle_in_the_cache_is_never_loaded(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    marker = tmp_path / "pwned"
    torch.save({"weight": Bomb(marker)}, _only_artifact(tmp_path) / WEIGHTS)
    _, _, hit = cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    assert not hit and not marker.exists()


def test_user_checkpoints_are_loaded_without_unpickling_code(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "model.pt"
    torch.save({"weight": Bomb(marker)}, crafted)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(crafted)
    assert not marker.exists()
    honest = tmp_path / "honest.pt"
    torch.save({"weight": torch.ones(2)}, honest)
    assert torch.equal(load_checkpoint(honest)["weight"], torch.ones(2))


def test_an_unfinished_artifact_left_by_a_dead_worker_is_rebuilt(tmp_path):
    cache = ArtifactCache(tmp_path)
    cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    directory = _only_artifact(tmp_path)
    (directory / "meta.json").unlink()  # the worker died before publishing meta.json
    _, _, hit = cache.get_or_train("target", {"a": 1}, lambda: torch.nn.Linear(2, 2), _train)
    assert not hit and (directory / "meta.json").exists()
