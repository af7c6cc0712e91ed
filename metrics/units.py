"""Per-unit scores: what a metric that is a statistic of a cell's attacked units keeps.

A task scores a cell's attacked units (identities for images, prompts for text and embeddings,
edge pairs for graphs); a metric that is a statistic of those units returns :class:`UnitScores`,
and the record keeps, beside the value, what the leaderboard's bootstrap (leaderboard.intervals)
resamples (``units``):

- ``{"statistic": "mean", "unit": "identities", "values": [...]}``: the metric is the mean of
  one value per unit (e.g. each identity's share of reconstructions the evaluator recognises);
- ``{"statistic": "auc", "unit": "edge pairs", "positives": [...], "negatives": [...]}``: the
  ROC AUC of the edges' scores against the sampled non-edges' scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UnitScores:
    """A metric's value and the per-unit scores behind it (``units``, JSON-ready)."""

    value: float
    units: dict


def unit_mean(per_unit, unit: str) -> UnitScores:
    """The mean of one score per unit (identity, prompt), kept with the scores."""
    values = np.asarray(per_unit, dtype=np.float64)
    return UnitScores(
        float(values.mean()),
        {"statistic": "mean", "unit": unit, "values": [round(float(v), 6) for v in values]},
    )


def unit_auc(positives, negatives, value: float) -> UnitScores:
    """An edge AUC (``value``) with the edge and non-edge scores it ranks."""
    return UnitScores(
        float(value),
        {
            "statistic": "auc",
            "unit": "edge pairs",
            "positives": [float(f"{v:.6g}") for v in np.asarray(positives, dtype=np.float64)],
            "negatives": [float(f"{v:.6g}") for v in np.asarray(negatives, dtype=np.float64)],
        },
    )


def unit_count(units: dict) -> int:
    if units["statistic"] == "auc":
        return len(units["positives"]) + len(units["negatives"])
    return len(units["values"])
