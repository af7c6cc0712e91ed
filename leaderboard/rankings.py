"""Rankings of one task's attack x defense matrix (mean over seeds of the primary metric).

Intervals. Every cell may carry its 95% interval: ``bounds`` is a pair of frames (low, high) of
the matrix's shape (NaN where a cell has none: then its value is its interval). An entry's rank
is 1 + the number of entries significantly stronger than it, where significantly stronger means
the two intervals do not overlap; with no interval the exact values decide (sports ranking:
1, 1, 3). Entries whose intervals overlap thus share a rank.

- Attacks on the same defenses: an attack is ranked on the defenses that every attack ranked
  with it ran against. :func:`attack_ranking_groups` splits the attacks by access level (a
  white-box attack is n/a against output-processing defenses), takes the defenses common to
  each level, and merges the levels that share them; each group is ranked on its own and says
  which defenses it was ranked on. In a group, the attacks are ranked in each defense's column
  as above; an attack's score is the mean of its ranks over the group's defenses, and attacks
  are ranked by that mean (equal means share a rank).
- Defenses on the same attacks: each defense's worst case is taken over the attacks that ran
  against EVERY compared defense (``common``); the strongest attack over all that apply to it is
  shown beside it (``worst_case_any``). With no attack common to all, the worst case over each
  defense's own attacks ranks them, and the row says so (``common`` 0).
- Floors: an attack that never queries the model (access ``none``: gan-random,
  feature-similarity, public-prompt) is its task's floor. :func:`below_floor` marks the cells
  whose interval does not clear the floor's value under the same defense.
"""

from __future__ import annotations

import math

import pandas as pd

Bounds = tuple[pd.DataFrame, pd.DataFrame]  # (low, high) 95% interval ends, NaN where none


def _column_bounds(values: pd.Series, bounds: Bounds | None, column: str) -> tuple:
    if bounds is None:
        return values, values
    low = bounds[0][column].reindex(values.index).astype(float).fillna(values)
    high = bounds[1][column].reindex(values.index).astype(float).fillna(values)
    return low, high


def shared_ranks(
    values: pd.Series,
    strongest_first: bool,
    low: pd.Series | None = None,
    high: pd.Series | None = None,
) -> pd.Series:
    """1 + the number of entries significantly stronger (non-overlapping 95% intervals
    ``[low, high]``; without them the values decide)."""
    values = values.astype(float)
    low = values if low is None else low.reindex(values.index).astype(float).fillna(values)
    high = values if high is None else high.reindex(values.index).astype(float).fillna(values)
    # strength intervals: larger is stronger
    weak_end, strong_end = (low, high) if strongest_first else (-high, -low)
    return pd.Series(
        {name: 1 + int((weak_end > strong_end[name] + 1e-12).sum()) for name in values.index},
        dtype=int,
    )


def attack_ranking(
    matrix: pd.DataFrame, higher_is_stronger: bool, bounds: Bounds | None = None
) -> list[dict]:
    """``matrix``: attacks x defenses of the primary metric (NaN where a cell did not run);
    every attack is ranked on the defenses it ran against."""
    ranks = pd.DataFrame(
        {
            defense: shared_ranks(
                column.dropna(),
                higher_is_stronger,
                *_column_bounds(column.dropna(), bounds, defense),
            ).reindex(column.index)
            for defense, column in matrix.items()
        },
        index=matrix.index,
    )
    mean_rank = ranks.mean(axis=1).dropna()
    if mean_rank.empty:
        return []
    overall = shared_ranks(mean_rank.round(9), strongest_first=False)
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


def attack_ranking_groups(
    matrix: pd.DataFrame,
    higher_is_stronger: bool,
    access: dict[str, str],
    levels: tuple[str, ...],
    bounds: Bounds | None = None,
) -> list[dict]:
    """The attacks ranked in groups that share their defenses: per access level (in the order
    of ``levels``) the defenses every attack of that level has a value against; levels with the
    same defenses are one group. Each group: ``access`` (its levels), ``defenses`` (ranked on)
    and ``rows`` (:func:`attack_ranking` on those defenses). The group that saw the most
    defenses comes first."""
    ran = matrix.notna()
    by_level: dict[str, list[str]] = {}
    for attack in matrix.index:
        if ran.loc[attack].any():
            by_level.setdefault(access.get(attack, ""), []).append(attack)
    order = {level: i for i, level in enumerate(levels)}
    groups: dict[tuple[str, ...], dict] = {}
    for level in sorted(by_level, key=lambda lv: (order.get(lv, len(order)), lv)):
        attacks = by_level[level]
        defenses = tuple(d for d in matrix.columns if ran.loc[attacks, d].all())
        group = groups.setdefault(defenses, {"access": [], "attacks": [], "defenses": defenses})
        group["access"].append(level)
        group["attacks"] += attacks
    out = []
    for defenses, group in groups.items():
        if not defenses:  # no defense that all of them ran against: each attack alone
            for attack in group["attacks"]:
                own = [d for d in matrix.columns if ran.loc[attack, d]]
                out.append(
                    {"access": [access.get(attack, "")], "attacks": [attack], "defenses": own}
                )
            continue
        out.append({**group, "defenses": list(defenses)})
    for group in out:
        group["rows"] = attack_ranking(
            matrix.loc[group["attacks"], group["defenses"]],
            higher_is_stronger,
            None
            if bounds is None
            else tuple(b.loc[group["attacks"], group["defenses"]] for b in bounds),
        )
    return sorted(out, key=lambda g: (-len(g["defenses"]), -len(g["attacks"]), g["access"]))


def below_floor(
    matrix: pd.DataFrame,
    higher_is_stronger: bool,
    floors: list[str],
    bounds: Bounds | None = None,
) -> pd.DataFrame:
    """True where an attack's interval does not clear the floor under the same defense: its
    weaker end is at or past the strongest floor attack's value. Floor attacks themselves and
    cells with no floor under their defense are False."""
    flags = pd.DataFrame(False, index=matrix.index, columns=matrix.columns)
    present = [f for f in floors if f in matrix.index]
    if not present:
        return flags
    for defense in matrix.columns:
        floor_values = matrix.loc[present, defense].dropna()
        if floor_values.empty:
            continue
        floor = floor_values.max() if higher_is_stronger else floor_values.min()
        column = matrix[defense].dropna().drop(present, errors="ignore")
        low, high = _column_bounds(column, bounds, defense)
        weak_end = low if higher_is_stronger else high
        beaten = weak_end > floor + 1e-12 if higher_is_stronger else weak_end < floor - 1e-12
        flags.loc[column.index, defense] = ~beaten
    return flags


def _worst_case(
    matrix: pd.DataFrame, bounds: Bounds | None, defense: str, attacks, higher: bool
) -> tuple[str, float, float, float]:
    """The strongest of ``attacks`` against ``defense``: (attack, value, low, high)."""
    column = matrix.loc[list(attacks), defense].dropna()
    strongest = (column if higher else -column).idxmax()
    low, high = (
        (math.nan, math.nan)
        if bounds is None
        else (float(bounds[0].loc[strongest, defense]), float(bounds[1].loc[strongest, defense]))
    )
    return strongest, float(column[strongest]), low, high


def defense_ranking(
    matrix: pd.DataFrame,
    higher_is_stronger: bool,
    utility: dict[str, float | None],
    bounds: Bounds | None = None,
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
        attack, value, low, high = _worst_case(
            matrix, bounds, d, common or applicable, higher_is_stronger
        )
        any_attack, any_value, _, _ = _worst_case(matrix, bounds, d, applicable, higher_is_stronger)
        rows[d] = {
            "defense": d,
            "worst_case": value,
            "low": None if math.isnan(low) else low,
            "high": None if math.isnan(high) else high,
            "strongest_attack": attack,
            "common": len(common),
            "worst_case_any": any_value,
            "strongest_attack_any": any_attack,
            "attacks": len(applicable),
            "utility": utility.get(d),
        }
    worst = pd.Series({d: row["worst_case"] for d, row in rows.items()})
    lows = pd.Series({d: row["low"] for d, row in rows.items()}, dtype=float)
    highs = pd.Series({d: row["high"] for d, row in rows.items()}, dtype=float)
    # a defense is stronger when the worst attack against it succeeds less
    ranks = shared_ranks(worst, not higher_is_stronger, lows, highs)
    ranked = [{"rank": int(ranks[d]), **row} for d, row in rows.items()]
    return sorted(ranked, key=lambda row: (row["rank"], row["defense"]))
