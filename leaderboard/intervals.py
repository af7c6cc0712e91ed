"""95% intervals of a cell's metrics from the per-unit scores its records keep
(metrics.units).

One seed (the default run): the interval is the 2.5th and 97.5th percentiles of the statistic
over ``RESAMPLES`` resamples of the units with replacement (Efron and Tibshirani, *An
Introduction to the Bootstrap*, 1993, ch. 13), as lm-evaluation-harness gives a standard error
from one run's examples. An AUC's resample draws edges and non-edges apart (stratified), since
the protocol fixes both counts. Several seeds: a two-level bootstrap (Davison and Hinkley,
*Bootstrap Methods and their Application*, 1997, sec. 3.8): each resample draws the seeds with
replacement, then the units of each drawn seed, and averages the seeds' statistics, so the
interval holds both the seed-to-seed and the unit-to-unit variation of the mean over seeds.
The resampling generator is seeded by the caller: a report is the same every time it is built.
"""

from __future__ import annotations

import numpy as np

RESAMPLES = 1000
LEVEL = 0.95


def _resampled_means(values: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    picks = rng.integers(0, len(values), size=(draws, len(values)))
    return values[picks].mean(axis=1)


def _resampled_aucs(
    positives: np.ndarray, negatives: np.ndarray, draws: int, rng: np.random.Generator
) -> np.ndarray:
    """The AUC of each stratified resample: the mean over drawn edge-non-edge pairs of
    1[edge scores higher] + 1/2 1[tie] (metrics.edge_ranking.edge_auc). Counted without a sort
    per resample: every score is placed among the sorted distinct scores once, a resample's
    non-edges are counted per distinct score, and each drawn edge reads how many lie below it
    and level with it (O(P + N) per resample: 1,000 resamples of Cora's 10,000 pairs in
    about a second)."""
    p, n = len(positives), len(negatives)
    levels = np.unique(np.concatenate([positives, negatives]))
    edge_level = np.searchsorted(levels, positives)
    non_edge_level = np.searchsorted(levels, negatives)
    out = np.empty(draws)
    chunk = max(1, 2_000_000 // (len(levels) + p + n))  # rows at once: memory stays ~100 MB
    for start in range(0, draws, chunk):
        rows = min(chunk, draws - start)
        drawn = non_edge_level[rng.integers(0, n, size=(rows, n))]
        drawn += np.arange(rows)[:, None] * len(levels)
        level = np.bincount(drawn.ravel(), minlength=rows * len(levels)).reshape(rows, -1)
        below = np.cumsum(level, axis=1) - level
        edges = edge_level[rng.integers(0, p, size=(rows, p))]
        wins = np.take_along_axis(below, edges, axis=1) + 0.5 * np.take_along_axis(
            level, edges, axis=1
        )
        out[start : start + rows] = wins.sum(axis=1) / (p * n)
    return out


def resampled_statistic(units: dict, draws: int, rng: np.random.Generator) -> np.ndarray:
    """The statistic of ``draws`` resamples of one record's units."""
    if units["statistic"] == "mean":
        return _resampled_means(np.asarray(units["values"], dtype=np.float64), draws, rng)
    if units["statistic"] == "auc":
        return _resampled_aucs(
            np.asarray(units["positives"], dtype=np.float64),
            np.asarray(units["negatives"], dtype=np.float64),
            draws,
            rng,
        )
    raise ValueError(f"unknown unit statistic {units['statistic']!r}")


def bootstrap_interval(
    seeds_units: list[dict], resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """The 95% percentile interval of the mean over seeds of a metric, from each seed's
    ``units``: a bootstrap over units with one seed, a two-level one with several."""
    if not seeds_units:
        raise ValueError("no units to resample")
    rng = np.random.default_rng(seed)
    k = len(seeds_units)
    if k == 1:
        statistics = resampled_statistic(seeds_units[0], resamples, rng)
    else:
        # level 1: the seeds each resample draws; level 2: one unit resample per drawn slot
        drawn = rng.integers(0, k, size=(resamples, k))
        per_seed = [resampled_statistic(u, resamples * k, rng) for u in seeds_units]
        slots = np.arange(resamples * k).reshape(resamples, k)
        stacked = np.stack(per_seed)  # [seed, resample slot]
        statistics = stacked[drawn, slots].mean(axis=1)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(statistics, [tail, 100 - tail])
    return float(low), float(high)
