"""The Hydra application: one job = one cell. ``invbench run`` and ``invbench bench`` call it."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from benchmark.runner import run_cell

# Records of the cells this process ran (the basic launcher runs jobs in-process).
FINISHED: list[dict] = []


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def cell(cfg: DictConfig) -> None:
    record = run_cell(cfg)
    if record is not None:
        FINISHED.append(record)
