"""The Hydra config tree (``benchmark/conf``) composed outside a Hydra run (CLI, check, perf)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONF_DIR = Path(__file__).resolve().parent / "conf"


def compose_config(overrides: list[str]) -> DictConfig:
    # imported here: `invbench list` and `--help` never compose, and Hydra takes 0.6 s to import
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="benchmark.conf", version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


def group_choices(group: str) -> list[str]:
    """The options of a config group, one per YAML (``_name.yaml``: shared blocks, no option)."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))
