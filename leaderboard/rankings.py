"""Rankings of one task's attack x defense matrix (mean over seeds of the primary metric).

Ties. Every cell carries the half-width of its 95% interval (``halves``; NaN or absent with one
seed). An entry's rank is 1 + the number of entries significantly stronger than it, where
significantly stronger means the two 95% intervals do not overlap; with no interval the exact
values decide (sports ranking: 1, 1, 3). Entries whose intervals overlap thus share a rank.

- Attacks by their mean rank over defenses: in each defense's column the attacks that ran are
  ranked, strongest first, as above; an attack's score is the mean of its ranks over the
  defenses it ran against, and attacks are ranked by that mean (equal means share a rank).
- Defenses on the same attacks: white-box attacks are n/a against output-processing defenses,
  so a defense judged by its strongest applicable attack would be judged by weaker attacks than
  the others. Each defense's worst case is taken over the attacks that ran against EVERY
  compared defense (``common``); the strongest attack over all that apply to it is shown
  beside it (``worst_case_any``). With no attack common to all, the worst case over each
  defense's own attacks ranks them, and the row says so (``common`` 0).
"""

from __future__ import annotations

import math

import pandas as pd


def _shared_ranks(
    values: pd.Series, strongest_first: bool, halves: pd.Series | None = None
) -> pd.Series:
    """1 + the number of entries significantly stronger (non-overlapping 95% intervals)."""
    sign = 1.0 if strongest_first else -1.0
    strength = values.astype(float) * sign
    half = (
        pd.Series(0.0, index=values.index)
        if halves is None
        else halves.reindex(values.index).astype(float).fillna(0.0)
    )
    low, high = strength - half, strength + half
    return pd.Series(
        {name: 1 + int((low > high[name] + 1e-12).sum()) for name in values.index}, dtype=int
    )


def attack_ranking(
    matrix: pd.DataFrame, higher_is_stronger: bool, halves: pd.DataFrame | None = None
) -> list[dict]:
    """``matrix``: attacks x defenses of the primary metric (NaN where a cell did not run);
    ``halves``: the same shape, each cell's 95% interval half-width."""
    ranks = pd.DataFrame(
        {
            defense: _shared_ranks(
                column.dropna(),
                higher_is_stronger,
                None if halves is None else halves[defense],
            ).reindex(column.index)
            for defense, column in matrix.items()
        },
        index=matrix.index,
    )
    mean_rank = ranks.mean(axis=1).dropna()
    if mean_rank.empty:
        return []
    overall = _shared_ranks(mean_rank.round(9), strongest_first=False)
    rows = [
        {
            "rank": int(overall[attack]),
            "attack": attack,
            "mean_rank": float(mean_rank[attack]),
            "defenses": int(ranks.loc[attack].notna().sum()),
        }
        for attack in mean_rank.index
    ]
    return sorted(rows, key=lambda row: (row["rank"], row["attack"]))


def _worst_case(
    matrix: pd.DataFrame, halves: pd.DataFrame | None, defense: str, attacks, higher: bool
) -> tuple[str, float, float]:
    """The strongest of ``attacks`` against ``defense``: (attack, value, interval half)."""
    column = matrix.loc[list(attacks), defense].dropna()
    strongest = (column if higher else -column).idxmax()
    half = math.nan if halves is None else float(halves.loc[strongest, defense])
    return strongest, float(column[strongest]), half


def defense_ranking(
    matrix: pd.DataFrame,
    higher_is_stronger: bool,
    utility: dict[str, float | None],
    halves: pd.DataFrame | None = None,
) -> list[dict]:
    """Defenses by the strongest common attack's success against them (best defense first)."""
    columns = [d for d in matrix.columns if matrix[d].notna().any()]
    if not columns:
        return []
    ran = matrix[columns].notna()
    common = [a for a in matrix.index if ran.loc[a].all()]
    rows = {}
    for d in columns:
        applicable = [a for a in matrix.index if ran.loc[a, d]]
        attack, value, half = _worst_case(
            matrix, halves, d, common or applicable, higher_is_stronger
        )
        any_attack, any_value, _ = _worst_case(matrix, halves, d, applicable, higher_is_stronger)
        rows[d] = {
            "defense": d,
            "worst_case": value,
            "interval": None if math.isnan(half) else half,
            "strongest_attack": attack,
            "common": len(common),
            "worst_case_any": any_value,
            "strongest_attack_any": any_attack,
            "attacks": len(applicable),
            "utility": utility.get(d),
        }
    worst = pd.Series({d: row["worst_case"] for d, row in rows.items()})
    intervals = pd.Series({d: row["interval"] for d, row in rows.items()}, dtype=float)
    # a defense is stronger when the worst attack against it succeeds less
    ranks = _shared_ranks(worst, strongest_first=not higher_is_stronger, halves=intervals)
    ranked = [{"rank": int(ranks[d]), **row} for d, row in rows.items()]
    return sorted(ranked, key=lambda row: (row["rank"], row["defense"]))
