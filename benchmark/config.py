"""The Hydra config tree (``benchmark/conf``) composed outside a Hydra run (CLI, check, perf)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent / "conf"


def compose_config(overrides: list[str]) -> DictConfig:
    with initialize_config_module(config_module="benchmark.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)
