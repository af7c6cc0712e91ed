"""Build the leaderboard from the run records alone.

``build_report(results, site)`` reads every record under ``results/``, aggregates the seeds of
each (suite, task, attack, defense) cell with pandas (mean, std, n), gives every metric of every
cell a 95% interval (a bootstrap over the attacked units its records keep, two-level over seeds
and units with several seeds: leaderboard.intervals), and writes:

- ``site/leaderboard.csv``: one row per cell, every metric with its interval ends
  (``<metric>_low``, ``<metric>_high``), utility and cost; columns no cell fills are left out;
- ``site/leaderboard.json``: the same rows plus the per-task matrices, rankings and summary;
- ``site/index.html``: one self-contained page (inline CSS, JS and SVG; images as data URIs;
  a Content-Security-Policy that lets no request leave it), rendered from
  ``templates/index.html.j2`` with autoescaping. At the top, per task, the strongest attack, the
  defense that lowers it most and that defense's utility cost. Per suite and task: the attack x
  defense heat map with intervals and the cells that do not clear the task's no-query floor,
  every metric (n/a with its reason where it could not be computed), the rankings
  (``leaderboard.rankings``: attacks in groups that share their defenses), the privacy-utility
  chart (``leaderboard.charts``), what the reconstructions look like (``record["examples"]``),
  and each record's provenance; then a card per method. Filters by task, access level and
  defense kind, and sortable columns, run in the page; tables scroll inside their box on a
  narrow screen.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import scipy.stats
from jinja2 import Environment, FileSystemLoader, select_autoescape

from benchmark.cache import atomic_write_text
from benchmark.registry import (
    ACCESS_LEVELS,
    ATTACKS,
    DEFENSE_KINDS,
    DEFENSES,
    TASKS,
    UnknownNameError,
    incompatibility,
    load_all,
)
from benchmark.results import iter_records
from benchmark.seeding import derive_seed
from leaderboard.charts import privacy_utility_chart, roc_chart
from leaderboard.intervals import bootstrap_interval
from leaderboard.rankings import attack_ranking_groups, below_floor, defense_ranking
from metrics.units import unit_count

CELL_KEYS = ["suite", "task", "attack", "defense"]
TEMPLATES = Path(__file__).resolve().parent / "templates"
# a cell's cost: time, memory, the attack's queries, and every target forward it caused
# (attack time plus the training of its own GANs and students)
COST_COLUMNS = ("seconds", "peak_rss_mb", "queries", "forwards")
PAGE_ONLY = ("rows", "chart", "examples", "provenance")  # section keys left out of the JSON


def flatten(record: dict) -> dict:
    row = {
        key: record.get(key)
        for key in (
            *CELL_KEYS,
            "seed",
            "status",
            "error",
            "modality",
            "access",
            "defense_kind",
            "primary_metric",
        )
    }
    for name, metric in (record.get("metrics") or {}).items():
        row[name] = metric.get("value")
    for name, metric in (record.get("utility") or {}).items():
        row[f"utility_{name}"] = metric.get("value")
    for name in COST_COLUMNS:
        row[name] = (record.get("cost") or {}).get(name)
    row["git_sha"] = (record.get("git") or {}).get("sha")
    row["git_dirty"] = (record.get("git") or {}).get("dirty")
    row["config_hash"] = record.get("config_hash")
    row["finished"] = record.get("finished")
    return row


def metric_directions(records: list[dict]) -> dict[str, bool]:
    directions = {}
    for record in records:
        for name, metric in (record.get("metrics") or {}).items():
            directions[name] = bool(metric.get("higher_is_better", True))
        for name, metric in (record.get("utility") or {}).items():
            directions[f"utility_{name}"] = bool(metric.get("higher_is_better", True))
    return directions


def t_interval_halves(std: pd.DataFrame, counts: pd.Series) -> pd.DataFrame:
    """Half-widths of the 95% t-interval of a mean over seeds: t_{0.975, n-1} * s / sqrt(n),
    with s the sample standard deviation (ddof 1); NaN with one seed. The interval of a metric
    whose records keep no per-unit scores (records from before they did)."""
    n = counts.reindex(std.index).astype(float)
    t = pd.Series(scipy.stats.t.ppf(0.975, (n - 1).clip(lower=1)), index=std.index)
    halves = std.mul(t / n.pow(0.5), axis=0)
    return halves.where(n > 1)


def unit_sets(records: list[dict]) -> dict[tuple, dict[str, list[dict]]]:
    """cell -> metric -> the ``units`` of each ok seed (in seed order), for the metrics whose
    every ok record of the cell keeps them."""
    seeds: dict[tuple, list[dict]] = {}
    for record in records:
        if record.get("status") == "ok":
            seeds.setdefault(tuple(record.get(k) for k in CELL_KEYS), []).append(record)
    out = {}
    for cell, ok in seeds.items():
        ok.sort(key=lambda r: r.get("seed") or 0)
        metrics = [r.get("metrics") or {} for r in ok]
        names = set.intersection(*(set(m) for m in metrics))
        out[cell] = {
            name: [m[name]["units"] for m in metrics]
            for name in sorted(names)
            if all(
                isinstance(m[name], dict) and isinstance(m[name].get("units"), dict)
                for m in metrics
            )
        }
    return out


def interval_method(units: list[dict] | None, seeds: int) -> str:
    """How a cell's interval was computed, in words for the page."""
    if units:
        unit = f"{unit_count(units[0])} {units[0].get('unit', 'units')}"
        if len(units) == 1:
            return f"bootstrap over {unit}"
        return f"two-level bootstrap over {len(units)} seeds and their units ({unit} in seed 1)"
    return f"t-interval over {seeds} seeds" if seeds > 1 else "none (one seed, no per-unit scores)"


def add_intervals(table: pd.DataFrame, metrics: list[str], units: dict) -> pd.DataFrame:
    """``<metric>_low`` and ``<metric>_high``: each cell's 95% interval, a (two-level) bootstrap
    over the units its records keep (leaderboard.intervals), else the t-interval over seeds, else
    none; ``interval`` says how the primary metric's was computed."""
    lows, highs, methods = {}, {}, []
    for index, row in table.iterrows():
        cell = tuple(row[k] for k in CELL_KEYS)
        kept = units.get(cell, {})
        for metric in metrics:
            low = high = math.nan
            if kept.get(metric) and _finite(row.get(metric)) is not None:
                stream = derive_seed(0, "bootstrap", *map(str, cell), metric)
                low, high = bootstrap_interval(kept[metric], seed=stream)
            elif _finite(row.get(f"{metric}_half")) is not None:
                low, high = row[metric] - row[f"{metric}_half"], row[metric] + row[f"{metric}_half"]
            lows.setdefault(f"{metric}_low", {})[index] = low
            highs.setdefault(f"{metric}_high", {})[index] = high
        primary = row.get("primary_metric")
        methods.append(interval_method(kept.get(primary), int(row.get("n_seeds") or 0)))
    table = table.join(pd.DataFrame(lows)).join(pd.DataFrame(highs))
    table["interval"] = methods
    return table.drop(columns=[f"{m}_half" for m in metrics if f"{m}_half" in table])


def aggregate(
    frame: pd.DataFrame, value_columns: list[str], units: dict | None = None
) -> pd.DataFrame:
    """One row per cell: mean over ok seeds, their sample std (ddof 1), the 95% interval of
    each metric (:func:`add_intervals`), seed counts, the first error."""
    ok = frame[frame.status == "ok"]
    grouped = ok.groupby(CELL_KEYS, sort=True)
    table = grouped[value_columns].mean()
    std = grouped[value_columns].std(ddof=1)
    halves = t_interval_halves(std, grouped.size()).add_suffix("_half")
    table = table.join(std.add_suffix("_std")).join(halves).join(grouped.size().rename("n_seeds"))
    failed = frame[frame.status != "ok"].groupby(CELL_KEYS)
    failures = failed.size().rename("n_failed").to_frame().join(failed["error"].first())
    meta = frame.groupby(CELL_KEYS)[
        ["modality", "access", "defense_kind", "primary_metric"]
    ].first()
    table = meta.join(table, how="left").join(failures, how="left")
    table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
    table["n_failed"] = table["n_failed"].fillna(0).astype(int)
    metrics = [c for c in value_columns if c not in COST_COLUMNS]
    return add_intervals(table.reset_index(), metrics, units or {})


def _finite(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def not_applicable_reason(task: str, attack: str, defense: str) -> str:
    try:
        reason = incompatibility(TASKS.get(task), ATTACKS.get(attack), DEFENSES.get(defense))
    except UnknownNameError:
        reason = None
    return reason or "not run in this sweep"


def _citations(records: list[dict]) -> dict[tuple[str, str], dict]:
    citations = {}
    for record in records:
        for kind, citation in (record.get("citations") or {}).items():
            if citation:
                citations[(kind, record.get(kind))] = citation
    return citations


def _examples(records: list[dict]) -> dict[tuple[str, str], dict]:
    """(attack, defense) -> the examples of its lowest-seed ok record that has some."""
    chosen: dict[tuple[str, str], tuple[int, dict]] = {}
    for record in records:
        examples, key = record.get("examples"), (record.get("attack"), record.get("defense"))
        if record.get("status") != "ok" or not isinstance(examples, dict):
            continue
        if key not in chosen or record.get("seed", 0) < chosen[key][0]:
            chosen[key] = (record.get("seed", 0), examples)
    return {key: examples for key, (_, examples) in chosen.items()}


def example_views(
    examples: dict[tuple[str, str], dict], attacks: list[str], defenses: list[str]
) -> dict:
    """What the page shows of the reconstructions: an image grid (attack x defense), prompt
    pairs, or one ROC chart per defense."""
    kinds = {e.get("kind") for e in examples.values()}
    if kinds == {"images"}:
        return {
            "kind": "images",
            "grid": [
                {"attack": a, "cells": [examples.get((a, d)) for d in defenses]} for a in attacks
            ],
        }
    if kinds == {"text"}:
        return {
            "kind": "text",
            "rows": [
                {"attack": a, "defense": d, **pair}
                for a in attacks
                for d in defenses
                for pair in (examples.get((a, d)) or {}).get("pairs", [])
            ],
        }
    if kinds == {"roc"}:
        return {
            "kind": "roc",
            "charts": [
                {
                    "defense": d,
                    "svg": roc_chart(
                        {a: examples[(a, d)] for a in attacks if (a, d) in examples},
                        f"ROC curves under {d}",
                    ),
                }
                for d in defenses
                if any((a, d) in examples for a in attacks)
            ],
        }
    return {"kind": None}


def hardware(record: dict) -> str:
    """Where the cell computed: its GPU (and bfloat16 autocast) or the CPU model. Records from
    before ``compute`` existed ran on the CPU."""
    compute, env = record.get("compute") or {}, record.get("environment") or {}
    if str(compute.get("device", "cpu")).startswith("cuda"):
        name = compute.get("device_name") or compute["device"]
        return f"{name}, bf16" if compute.get("amp") else name
    return env.get("cpu") or "cpu"


def provenance_rows(records: list[dict]) -> list[dict]:
    rows = []
    for record in sorted(
        records, key=lambda r: (r.get("attack", ""), r.get("defense", ""), r.get("seed", 0))
    ):
        git, env, cost = (record.get(k) or {} for k in ("git", "environment", "cost"))
        rows.append(
            {
                "attack": record.get("attack"),
                "defense": record.get("defense"),
                "seed": record.get("seed"),
                "status": record.get("status"),
                "access": record.get("access"),
                "kind": record.get("defense_kind"),
                "git": (git.get("sha") or "")[:10] + (" (dirty)" if git.get("dirty") else ""),
                "config_hash": (record.get("config_hash") or "")[:12],
                "hardware": hardware(record),
                "date": record.get("finished"),
                "seconds": cost.get("seconds"),
                "peak_rss_mb": cost.get("peak_rss_mb"),
                "queries": cost.get("queries"),
                "forwards": cost.get("forwards"),
            }
        )
    return rows


def _pivot(group: pd.DataFrame, column: str, attacks: list, defenses: list) -> pd.DataFrame:
    if column not in group:
        return pd.DataFrame(index=attacks, columns=defenses, dtype=float)
    return (
        group.pivot(index="attack", columns="defense", values=column)
        .reindex(index=attacks, columns=defenses)
        .astype(float)
    )


def unavailable_reasons(records: list[dict]) -> dict[str, str]:
    """metric -> why it could not be computed (the first reason a record gives), for the
    metrics no ok record of the task has a value for."""
    reasons: dict[str, str] = {}
    valued: set[str] = set()
    for record in records:
        if record.get("status") != "ok":
            continue
        for name, metric in (record.get("metrics") or {}).items():
            if not isinstance(metric, dict):
                continue
            if metric.get("value") is not None:
                valued.add(name)
            elif metric.get("unavailable"):
                reasons.setdefault(name, str(metric["unavailable"]))
    return {name: reason for name, reason in sorted(reasons.items()) if name not in valued}


def _cell(values, lows, highs, flags, attack, defense) -> dict:
    return {
        "value": _finite(values.loc[attack, defense]),
        "low": _finite(lows.loc[attack, defense]),
        "high": _finite(highs.loc[attack, defense]),
        "below_floor": bool(flags.loc[attack, defense]),
    }


def task_summary(
    higher: bool, utility_cost: dict, values, lows, highs, flags, floors
) -> dict | None:
    """The strongest model-using attack against no defense (with its interval), the defense
    that lowers its success most, and that defense's utility cost."""
    if "none" not in values.columns:
        return None
    undefended = values["none"].drop(floors, errors="ignore").dropna()
    if undefended.empty:
        return None
    strongest = (undefended if higher else -undefended).idxmax()
    summary = {"attack": strongest, **_cell(values, lows, highs, flags, strongest, "none")}
    others = values.loc[strongest].drop("none").dropna()
    if not others.empty:
        best = (-others if higher else others).idxmax()
        summary["defense"] = {
            "name": best,
            **_cell(values, lows, highs, flags, strongest, best),
            "utility_cost": utility_cost.get(best),
        }
    return summary


def no_trade_off_note(utility_of: dict[str, float | None]) -> str | None:
    """Said beside the chart when most defenses cost no utility at all (digits: the target is
    perfect under 9 of 11 defenses), so the chart cannot show a trade-off."""
    base = utility_of.get("none")
    defended = {d: u for d, u in utility_of.items() if d != "none" and u is not None}
    if base is None or not defended:
        return None
    free = [d for d, u in defended.items() if abs(u - base) < 1e-9]
    if 2 * len(free) <= len(defended):
        return None
    return (
        f"No trade-off to see here: the target's test accuracy is {base:.4g} without a "
        f"defense and the same under {len(free)} of {len(defended)} defenses, so their utility "
        f"cost is 0 and they differ only in privacy."
    )


def task_sections(
    cells: pd.DataFrame, records: list[dict], directions: dict[str, bool]
) -> list[dict]:
    citations = _citations(records)
    sections = []
    for (suite, task), group in cells.groupby(["suite", "task"], sort=True):
        task_records = [r for r in records if (r.get("suite"), r.get("task")) == (suite, task)]
        primary = group.primary_metric.dropna().iloc[0]
        higher = directions.get(primary, True)
        attacks = sorted(group.attack.unique())
        defenses = sorted(group.defense.unique(), key=lambda d: (d != "none", d))
        values = _pivot(group, primary, attacks, defenses)
        bounds = (
            _pivot(group, f"{primary}_low", attacks, defenses),
            _pivot(group, f"{primary}_high", attacks, defenses),
        )
        access = group.groupby("attack").access.first()
        kinds = group.groupby("defense").defense_kind.first()
        floors = [a for a in attacks if access[a] == "none"]
        flags = below_floor(values, higher, floors, bounds)
        finite = values.stack().dropna()
        low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
        matrix = []
        for attack in attacks:
            row = []
            for defense in defenses:
                hit = group[(group.attack == attack) & (group.defense == defense)]
                if hit.empty:
                    row.append(
                        {
                            "state": "na",
                            "kind": kinds[defense],
                            "reason": not_applicable_reason(task, attack, defense),
                        }
                    )
                    continue
                cell = hit.iloc[0]
                value = _finite(cell.get(primary))
                if cell.n_seeds == 0 or value is None:
                    row.append(
                        {"state": "failed", "kind": kinds[defense], "reason": str(cell.error)}
                    )
                else:
                    share = 0.5 if high == low else (value - low) / (high - low)
                    row.append(
                        {
                            "state": "ok",
                            **_cell(values, *bounds, flags, attack, defense),
                            "kind": kinds[defense],
                            "share": share if higher else 1 - share,
                            "n": int(cell.n_seeds),
                            "failed": int(cell.n_failed),
                            "reason": str(cell.error) if cell.n_failed else "",
                        }
                    )
            matrix.append(
                {
                    "attack": attack,
                    "access": access[attack],
                    "floor": attack in floors,
                    "cells": row,
                    "url": (citations.get(("attack", attack)) or {}).get("url"),
                }
            )
        utility = (
            group.groupby("defense")["utility_test_accuracy"].mean()
            if "utility_test_accuracy" in group
            else pd.Series(dtype=float)
        )
        utility_of = {d: _finite(utility.get(d)) for d in defenses}
        base = utility_of.get("none")
        utility_cost = {
            d: None if base is None or u is None else base - u for d, u in utility_of.items()
        }
        defense_rows = defense_ranking(values, higher, utility_of, bounds)
        for row in defense_rows:
            row["kind"] = kinds[row["defense"]]
            row["utility_cost"] = utility_cost.get(row["defense"])
            row["reported"] = reported_value(task_records, "defense", row["defense"], primary)
        ranking_groups = attack_ranking_groups(
            values, higher, access.to_dict(), ACCESS_LEVELS, bounds
        )
        for ranking in ranking_groups:
            for row in ranking["rows"]:
                attack = row["attack"]
                row["access"] = access[attack]
                row["floor"] = attack in floors
                row["below_floor"] = [d for d in ranking["defenses"] if flags.loc[attack, d]]
                row["reported"] = reported_value(task_records, "attack", attack, primary)
        methods = sorted(set(group["interval"]) - {""}) if "interval" in group else []
        unavailable = unavailable_reasons(task_records)
        floor_value = (
            None
            if not floors or "none" not in values.columns
            else _finite(
                values.loc[floors, "none"].max() if higher else values.loc[floors, "none"].min()
            )
        )
        section = {
            "suite": suite,
            "task": task,
            "modality": group.modality.iloc[0],
            "primary": primary,
            "higher": higher,
            "attacks": attacks,
            "matrix": matrix,
            "floors": floors,
            "interval_methods": methods,
            "metrics": [
                m
                for m in sorted(directions)
                if not m.startswith("utility_")
                and ((m in group and group[m].notna().any()) or m in unavailable)
            ],
            "unavailable": unavailable,
            "defenses": [
                {
                    "name": d,
                    "kind": kinds[d],
                    "url": (citations.get(("defense", d)) or {}).get("url"),
                    "utility": utility_of[d],
                    "utility_cost": utility_cost[d],
                }
                for d in defenses
            ],
            "attack_rankings": ranking_groups,
            "defense_ranking": defense_rows,
            "chart": privacy_utility_chart(
                defense_rows, primary, higher, floor_value, salt=f"{suite}-{task}"
            ),
            "chart_note": no_trade_off_note(utility_of),
            "floor_value": floor_value,
            "examples": example_views(_examples(task_records), attacks, defenses),
            "provenance": provenance_rows(task_records),
            "rows": group.to_dict("records"),
        }
        section["summary"] = task_summary(higher, utility_cost, values, *bounds, flags, floors)
        sections.append(section)
    return sections


def reported_entries(records: list[dict], kind: str, name: str) -> list[dict]:
    """The distinct ``reported:`` entries of a method in these records (each record keeps the
    entries of its own task and target, runner.reported_for)."""
    seen: dict[str, dict] = {}
    for record in records:
        if record.get(kind) != name:
            continue
        for entry in (record.get("reported") or {}).get(kind) or []:
            seen.setdefault(json.dumps(entry, sort_keys=True, default=str), entry)
    return list(seen.values())


def reported_value(records: list[dict], kind: str, name: str, metric: str) -> dict | None:
    """The paper's number for ``metric`` on this task, for the rankings' "paper" column."""
    for entry in reported_entries(records, kind, name):
        value = _finite((entry.get("metrics") or {}).get(metric))
        if value is not None:
            return {
                "value": value,
                "table": entry.get("table"),
                "source": entry.get("source"),
                "attack": entry.get("attack"),
            }
    return None


def method_cards(records: list[dict], sections: list[dict]) -> list[dict]:
    """One card per attack and defense in the records: citation, access or kind, version,
    the hyperparameters its cells ran with, and the paper's reported numbers (the ``reported:``
    list of its YAML, on the tasks it names) beside ours on each task (the undefended cell for
    an attack, the worst case for a defense)."""
    ours: dict[tuple[str, str], list[dict]] = {}
    for s in sections:
        label = f"{s['suite']}/{s['task']}"
        for row in s["matrix"]:
            cell = (
                row["cells"][[d["name"] for d in s["defenses"]].index("none")]
                if any(d["name"] == "none" for d in s["defenses"])
                else None
            )
            if cell and cell["state"] == "ok":
                ours.setdefault(("attack", row["attack"]), []).append(
                    {
                        "task": label,
                        "metric": s["primary"],
                        "value": cell["value"],
                        "against": "no defense",
                    }
                )
        for row in s["defense_ranking"]:
            ours.setdefault(("defense", row["defense"]), []).append(
                {
                    "task": label,
                    "metric": s["primary"],
                    "value": row["worst_case"],
                    "against": f"strongest attack ({row['strongest_attack']})",
                }
            )
    cards: dict[tuple[str, str], dict] = {}
    for record in records:
        for kind in ("attack", "defense"):
            name = record.get(kind)
            card = cards.setdefault(
                (kind, name),
                {
                    "kind": kind,
                    "name": name,
                    "citation": (record.get("citations") or {}).get(kind),
                    "level": record.get("access")
                    if kind == "attack"
                    else record.get("defense_kind"),
                    "version": (record.get("versions") or {}).get(kind),
                    "settings": {},
                    "reported": reported_entries(records, kind, name),
                    "ours": ours.get((kind, name), []),
                },
            )
            settings = {
                k: v
                for k, v in ((record.get("config") or {}).get(kind) or {}).items()
                if k != "name"
            }
            text = json.dumps(settings, indent=1, sort_keys=True, default=str)
            card["settings"].setdefault(text, 0)
            card["settings"][text] += 1
    return sorted(cards.values(), key=lambda c: (c["kind"], c["name"] or ""))


def build_report(results: Path, site: Path) -> Path:
    load_all()
    records = list(iter_records(results))
    site.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([flatten(r) for r in records])
    directions = metric_directions(records)
    value_columns = sorted(directions) + list(COST_COLUMNS)
    if frame.empty:
        cells = pd.DataFrame(columns=CELL_KEYS)
        sections, cards = [], []
    else:
        for column in value_columns:
            frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
        cells = aggregate(frame, value_columns, unit_sets(records))
        sections = task_sections(cells, records, directions)
        cards = method_cards(records, sections)
        cells = cells.dropna(axis=1, how="all")  # a column no cell has a value in says nothing
    cells.to_csv(site / "leaderboard.csv", index=False, float_format="%.6g")
    payload = {
        "schema_version": 1,
        "records": len(records),
        "metrics": directions,
        "cells": json.loads(cells.to_json(orient="records")),
        "tasks": [{k: v for k, v in s.items() if k not in PAGE_ONLY} for s in sections],
    }
    atomic_write_text(site / "leaderboard.json", json.dumps(payload, indent=2, default=str))
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"])
    )
    html = environment.get_template("index.html.j2").render(
        sections=sections,
        cards=cards,
        records=len(records),
        directions=directions,
        failed=int((frame.status != "ok").sum()) if not frame.empty else 0,
        access_levels=[a for a in ACCESS_LEVELS if any(a == r.get("access") for r in records)],
        defense_kinds=[
            k for k in DEFENSE_KINDS if any(k == r.get("defense_kind") for r in records)
        ],
    )
    index = site / "index.html"
    atomic_write_text(index, html)
    return index
