"""Deterministic seeds per stage, so the same cell twice gives identical numbers on CPU."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch


def derive_seed(seed: int, *stage: str) -> int:
    """A 31-bit seed for one stage of one cell (target training, prior training, attack ...)."""
    digest = hashlib.sha256(":".join([str(seed), *stage]).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
