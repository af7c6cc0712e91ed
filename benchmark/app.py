"""The Hydra application: one job = one cell. ``invbench run`` and ``invbench bench`` call it."""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig

from benchmark.quiet import quiet_libraries, quiet_progress_bars
from benchmark.runner import run_cell
from benchmark.workers import threads_per_worker
from metrics._pretrained import weight_downloads

# Records of the cells this process ran (the basic launcher runs jobs in-process).
FINISHED: list[dict] = []
# Set by the launcher (invbench run / bench) once it has checked the metrics' weights files
# (benchmark/cli.py, check_metric_weights): the cell then never downloads them.
WEIGHTS_CHECKED_KEY = "weights_checked"


def job_number() -> int:
    """This job's number in a Hydra sweep (0 for a single run): it picks the worker's GPU."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return int(HydraConfig.get().job.get("num") or 0)
    except ValueError:  # no Hydra run in progress
        return 0


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def cell(cfg: DictConfig) -> None:
    quiet_libraries()  # a worker process starts with Python's default warning filters
    if not cfg.get("progress", True):
        quiet_progress_bars()
    workers = int(cfg.get("workers", 1))
    if workers > 1:  # one of several worker processes: share the cores, do not oversubscribe
        torch.set_num_threads(threads_per_worker(workers))
    with weight_downloads(not cfg.get(WEIGHTS_CHECKED_KEY, False)):
        record = run_cell(cfg, job_number())
    if record is not None:
        FINISHED.append(record)
