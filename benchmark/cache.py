"""Artifact cache for trained targets, evaluators and attack priors.

An artifact is stored under ``<cache>/<kind>/<key>/`` where ``key`` hashes the config that
produced it (which includes the producing code's version):

- ``weights.safetensors``: the state dict (safetensors never unpickles objects);
- ``meta.json``: the producing config, the sha256 of the weights file, training metadata.

``meta.json`` is written last and atomically, so an artifact without one is unfinished. Loading
checks the weights' sha256 against ``meta.json``: a truncated or tampered file is deleted and
rebuilt, never loaded. A file lock per key makes concurrent workers wait for the one that
trains instead of training twice or reading a half-written file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch
from filelock import FileLock
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)

WEIGHTS = "weights.safetensors"
META = "meta.json"


def config_hash(config: dict) -> str:
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def file_md5(path: Path) -> str:
    """The checksum published datasets (torchvision's CelebA) state."""
    return file_digest(path, "md5")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; records and the site are shared
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Load a state dict from a user-supplied file without unpickling arbitrary objects.

    ``.safetensors`` files are read by safetensors; anything else goes through
    ``torch.load(weights_only=True)``, which refuses pickled code (it raises
    ``pickle.UnpicklingError`` for a crafted file instead of running it).
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


class ArtifactCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.trainings_log = self.root / "trainings.jsonl"

    def directory(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get_or_train(
        self,
        kind: str,
        config: dict,
        build: Callable[[], torch.nn.Module],
        train: Callable[[torch.nn.Module], dict],
    ) -> tuple[torch.nn.Module, dict, bool]:
        """Return (module, meta, cache_hit), training and storing the module on a miss."""
        key = config_hash(config)[:20]
        directory = self.directory(kind, key)
        directory.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(directory) + ".lock"):
            module = build()
            meta = self._load_verified(directory, module)
            if meta is not None:
                # artifacts are used for inference: a loaded module must behave as the freshly
                # trained one did (batch norm on running statistics, no dropout)
                return module.eval(), meta, True
            started = time.perf_counter()
            extra = train(module) or {}
            meta = {
                "kind": kind,
                "key": key,
                "config": config,
                "train_seconds": round(time.perf_counter() - started, 3),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                **extra,
            }
            self._store(directory, module, meta)
            self._log_training(kind, key, config)
            return module.eval(), meta, False

    def _load_verified(self, directory: Path, module: torch.nn.Module) -> dict | None:
        meta_path, weights_path = directory / META, directory / WEIGHTS
        if not meta_path.exists():
            if directory.exists():
                shutil.rmtree(directory)  # left by a worker that died while producing it
            return None
        try:
            meta = json.loads(meta_path.read_text())
            if not weights_path.exists() or file_sha256(weights_path) != meta["sha256"]:
                raise ValueError("weights file does not match the sha256 recorded in meta.json")
            module.load_state_dict(load_file(str(weights_path)))
        except Exception as error:  # corrupted: rebuild, never trust it
            log.warning("cached artifact %s is corrupted (%s); rebuilding it", directory, error)
            shutil.rmtree(directory, ignore_errors=True)
            return None
        return meta

    def _store(self, directory: Path, module: torch.nn.Module, meta: dict) -> None:
        staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
        try:
            state = {
                k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()
            }
            save_file(state, str(staging / WEIGHTS))
            meta["sha256"] = file_sha256(staging / WEIGHTS)
            (staging / META).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
            if directory.exists():
                shutil.rmtree(directory)
            os.replace(staging, directory)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _log_training(self, kind: str, key: str, config: dict) -> None:
        line = json.dumps(
            {"kind": kind, "key": key, "pid": os.getpid(), "time": time.time(), "config": config},
            default=str,
        )
        with open(self.trainings_log, "a") as handle:
            handle.write(line + "\n")

    def trainings(self) -> list[dict]:
        """Every training this cache performed (one JSON line each), oldest first."""
        if not self.trainings_log.exists():
            return []
        return [json.loads(line) for line in self.trainings_log.read_text().splitlines() if line]
