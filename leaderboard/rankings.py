"""Rankings of one task's attack x defense matrix (mean over seeds of the primary metric).

- Attacks by their mean rank over defenses: in each defense's column the attacks that ran are
  ranked, strongest first (ties share the best rank, as in sports: 1, 1, 3); an attack's score is
  the mean of its ranks over the defenses it ran against, and attacks are ranked by that mean.
- Defenses by their worst case: the strongest attack's success against them (lower is a better
  defense), next to their utility. White-box attacks are n/a against output-processing defenses,
  so a column's worst case is over the attacks that apply to it; the ranking says so by naming
  the attack and counting the attacks behind each number.
"""

from __future__ import annotations

import pandas as pd


def _shared_ranks(values: pd.Series, strongest_first: bool) -> pd.Series:
    return values.rank(method="min", ascending=not strongest_first).astype(int)


def attack_ranking(matrix: pd.DataFrame, higher_is_stronger: bool) -> list[dict]:
    """``matrix``: attacks x defenses of the primary metric (NaN where a cell did not run)."""
    ranks = matrix.apply(
        lambda column: _shared_ranks(column.dropna(), higher_is_stronger).reindex(column.index),
        axis=0,
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


def defense_ranking(
    matrix: pd.DataFrame, higher_is_stronger: bool, utility: dict[str, float | None]
) -> list[dict]:
    """Defenses by the strongest attack's success against them (best defense first)."""
    strength = matrix if higher_is_stronger else -matrix
    columns = [d for d in matrix.columns if matrix[d].notna().any()]
    if not columns:
        return []
    strongest = {d: strength[d].idxmax() for d in columns}
    worst = pd.Series({d: float(matrix.loc[strongest[d], d]) for d in columns})
    ranks = _shared_ranks(worst if higher_is_stronger else -worst, strongest_first=False)
    rows = [
        {
            "rank": int(ranks[d]),
            "defense": d,
            "worst_case": float(worst[d]),
            "strongest_attack": strongest[d],
            "attacks": int(matrix[d].notna().sum()),
            "utility": utility.get(d),
        }
        for d in columns
    ]
    return sorted(rows, key=lambda row: (row["rank"], row["defense"]))
