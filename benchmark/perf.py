"""`make perf`: what a sweep costs, measured rather than guessed.

Runs ``invbench bench`` on the chosen slice of a suite (default: the whole ``mini`` suite; any
bench override narrows it, e.g. ``make perf ARGS="task=digits"``) three times, in fresh folders
under ``--work``:

1. cold, one worker per ``--jobs`` value (default 1 and 2): a new artifact cache each time;
2. warm: the last cold run's cache, new results, so every cell runs again and nothing should
   train.

It prints the wall time of each run and the 1-vs-N ratio, per attack the median cell time split
into training (targets, evaluators, priors) and attack, the warm run's cache hit rate and
trainings, and the peak RSS per cell; the same figures go to ``<results>/perf/perf-<time>.json``.
It also times GMI's latent search over every identity at once against one identity at a time
at the same budget (:func:`gmi_vectorisation`). Its timings are the machine's: run nothing else
meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmark.access import WhiteBoxAccess
from benchmark.cache import ArtifactCache
from benchmark.config import compose_config
from benchmark.context import RunContext
from benchmark.methods import TaskView
from benchmark.registry import ATTACKS, load_all
from benchmark.results import iter_records
from tasks.face_models import build_image_model
from tasks.images import ImageVictims


def run_sweep(overrides: list[str], jobs: int, cache: Path, results: Path) -> dict:
    """One ``invbench bench`` in a subprocess (the way a user runs it); its wall time and the
    records and trainings it produced."""
    trainings_before = len(ArtifactCache(cache).trainings())
    env = {
        **os.environ,
        "INVBENCH_CACHE": str(cache),
        "INVBENCH_RESULTS": str(results),
        "INVBENCH_SITE": str(results.parent / f"{results.name}-site"),
    }
    command = [
        sys.executable,
        "-m",
        "benchmark.cli",
        "bench",
        *overrides,
        f"jobs={jobs}",
        "progress=false",
    ]
    start = time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        sys.stderr.write(finished.stdout[-4000:] + finished.stderr[-4000:])
        raise SystemExit(
            f"perf: `invbench bench {' '.join(overrides)} jobs={jobs}` exited "
            f"with {finished.returncode}; fix the sweep first"
        )
    cells = [
        {"cell": r["key"], "attack": r["attack"], "status": r["status"], **r["cost"]}
        for r in iter_records(results)
    ]
    hits = sum(c.get("cache_hits", 0) for c in cells)
    misses = sum(c.get("cache_misses", 0) for c in cells)
    return {
        "jobs": jobs,
        "wall_seconds": round(wall, 1),
        "cells": len(cells),
        "failed": sum(c["status"] != "ok" for c in cells),
        "worker_seconds": round(sum(c.get("seconds", 0.0) for c in cells), 1),
        "train_seconds": round(sum(c.get("train_seconds", 0.0) for c in cells), 1),
        "attack_seconds": round(sum(c.get("attack_seconds", 0.0) for c in cells), 1),
        "cache_hits": hits,
        "cache_misses": misses,
        "cache_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "trainings": len(ArtifactCache(cache).trainings()) - trainings_before,
        "peak_rss_mb_max": max((c.get("peak_rss_mb", 0.0) for c in cells), default=0.0),
        "per_cell": cells,
    }


def per_attack(cells: list[dict]) -> dict:
    """Median cell, training and attack seconds and the largest peak RSS, per attack."""
    by_attack: dict[str, list[dict]] = {}
    for cell in cells:
        by_attack.setdefault(cell["attack"], []).append(cell)
    return {
        attack: {
            "cells": len(group),
            "median_seconds": round(statistics.median(c["seconds"] for c in group), 2),
            "median_train_seconds": round(statistics.median(c["train_seconds"] for c in group), 2),
            "median_attack_seconds": round(
                statistics.median(c["attack_seconds"] for c in group), 2
            ),
            "peak_rss_mb_max": max(c["peak_rss_mb"] for c in group),
        }
        for attack, group in sorted(by_attack.items())
    }


def gmi_vectorisation(
    identities: int = 5,
    per_identity: int = 6,
    steps: int = 100,
    image_shape: tuple[int, int, int] = (1, 16, 16),
) -> dict:
    """Seconds of GMI's search for ``identities`` x ``per_identity`` latents batched into one
    optimisation (what the attack does), and as a Python loop of one optimisation per identity,
    at the same steps. The digits mini shapes and models, untrained: the cost of a step does
    not depend on the weights."""
    load_all()
    cfg = compose_config(["attack=gmi", "progress=false"])
    attack = ATTACKS.get("gmi").obj(cfg.attack, RunContext(progress=False))
    torch.manual_seed(0)
    prior = attack.build_prior(TaskView("image", image_shape, identities)).eval()
    target = build_image_model(
        str(cfg.task.target.model), identities, image_shape, dict(cfg.task.target)
    )
    access = WhiteBoxAccess(target, lambda images: torch.softmax(target(images), dim=-1))

    def search(classes: list[int]) -> float:
        victims = ImageVictims(torch.tensor(classes), per_identity, image_shape, identities)
        start = time.perf_counter()
        attack.run(access, victims, prior, {"steps": steps}, torch.Generator().manual_seed(0))
        return time.perf_counter() - start

    batched = round(search(list(range(identities))), 3)
    looped = round(sum(search([c]) for c in range(identities)), 3)
    return {
        "identities": identities,
        "per_identity": per_identity,
        "steps": steps,
        "batched_seconds": batched,
        "per_identity_loop_seconds": looped,
        "speedup": round(looped / batched, 2),
        "torch_threads": torch.get_num_threads(),
    }


def report_lines(figures: dict) -> list[str]:
    lines = [
        f"invbench perf: {' '.join(figures['overrides']) or 'the mini suite'} "
        f"on {figures['cpu_count']} cores"
    ]
    for run in figures["cold"]:
        lines.append(
            f"cold, jobs={run['jobs']}: {run['wall_seconds']:.1f} s wall, "
            f"{run['cells']} cells ({run['failed']} failed), worker time "
            f"{run['worker_seconds']:.1f} s = training {run['train_seconds']:.1f} + "
            f"attacks {run['attack_seconds']:.1f} + rest, {run['trainings']} trainings, "
            f"peak RSS {run['peak_rss_mb_max']:.0f} MB"
        )
    for jobs, ratio in figures["speedup"].items():
        lines.append(f"wall time jobs=1 / jobs={jobs}: {ratio:.2f}x")
    vector = figures["gmi_vectorisation"]
    lines.append(
        f"gmi search, {vector['identities']} identities x {vector['per_identity']} "
        f"latents, {vector['steps']} steps: batched {vector['batched_seconds']:.2f} s, "
        f"one identity at a time {vector['per_identity_loop_seconds']:.2f} s "
        f"({vector['speedup']:.2f}x)"
    )
    warm = figures["warm"]
    lines.append(
        f"warm, jobs={warm['jobs']}: {warm['wall_seconds']:.1f} s wall, cache hit rate "
        f"{warm['cache_hit_rate']}, {warm['trainings']} trainings"
    )
    lines.append("per attack (last cold run): median cell s = training + attack + rest, peak RSS")
    for attack, row in figures["per_attack"].items():
        lines.append(
            f"  {attack:20s} {row['median_seconds']:7.2f} = "
            f"{row['median_train_seconds']:6.2f} + {row['median_attack_seconds']:6.2f} "
            f"+ ...  {row['peak_rss_mb_max']:6.0f} MB  ({row['cells']} cells)"
        )
    return lines


def publish(figures: dict, lines: list[str], out: Path | None, prefix: str) -> Path:
    """Print the report and write the figures to ``<out>/<prefix>-<time>.json`` (default
    folder: ``<INVBENCH_RESULTS or results>/perf``)."""
    print("\n".join(lines), flush=True)
    out = out or Path(os.environ.get("INVBENCH_RESULTS", "results")) / "perf"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{prefix}-{time.strftime('%Y-%m-%d_%H-%M-%S')}.json"
    path.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {path}")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.perf",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--jobs", default="1,2", help="worker counts to time, cold (1,2)")
    parser.add_argument(
        "--work",
        type=Path,
        default=None,
        help="folder for the runs' caches and results (default: a temporary one)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the JSON goes (default: <INVBENCH_RESULTS or results>/perf)",
    )
    parser.add_argument(
        "--vector-steps",
        type=int,
        default=100,
        help="steps of the batched-vs-loop GMI timing (the mini budget: 100)",
    )
    args, overrides = parser.parse_known_args(argv)
    try:
        job_counts = [int(j) for j in args.jobs.split(",")]
        assert job_counts and all(j >= 1 for j in job_counts)
    except (ValueError, AssertionError):
        parser.error(f"--jobs takes positive integers separated by commas, not {args.jobs!r}")
    work = args.work or Path(tempfile.mkdtemp(prefix="invbench-perf-"))
    cold = [
        run_sweep(
            overrides, jobs, work / f"cold-{jobs}" / "cache", work / f"cold-{jobs}" / "results"
        )
        for jobs in job_counts
    ]
    last = cold[-1]
    warm = run_sweep(
        overrides, last["jobs"], work / f"cold-{last['jobs']}" / "cache", work / "warm" / "results"
    )
    single = next((run for run in cold if run["jobs"] == 1), None)
    figures = {
        "overrides": overrides,
        "cpu_count": os.cpu_count(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cold": cold,
        "warm": warm,
        "per_attack": per_attack(last["per_cell"]),
        "gmi_vectorisation": gmi_vectorisation(steps=args.vector_steps),
        "speedup": {
            run["jobs"]: round(single["wall_seconds"] / run["wall_seconds"], 2)
            for run in cold
            if single and run["jobs"] != 1
        },
    }
    publish(figures, report_lines(figures), args.out, "perf")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
