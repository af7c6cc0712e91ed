"""How many cells `invbench bench` runs at once, and how many torch threads each one gets.

The suites' models are small: one single-threaded process uses a core better than half of a
two-threaded one (measured on 2 cores: two workers train WGAN-GP steps 1.4x faster than one
worker with two threads), so ``jobs: auto`` runs one worker per two cores and at least two.
"""

from __future__ import annotations

import os


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def resolve_jobs(value) -> int:
    """``jobs`` from the config: ``auto`` or a positive integer."""
    if str(value).strip().lower() == "auto":
        cores = available_cores()
        return 1 if cores < 2 else max(2, cores // 2)
    try:
        jobs = int(value)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError(
            f"jobs must be 'auto' or a positive integer, got {value!r} "
            f"(jobs=1 runs the cells one at a time in this process)"
        )
    return jobs


def threads_per_worker(workers: int) -> int:
    return max(1, available_cores() // workers)
