"""Build the leaderboard from the run records alone.

``build_report(results, site)`` reads every record under ``results/``, aggregates the seeds of
each (suite, task, attack, defense) cell with pandas (mean, std, n), and writes:

- ``site/leaderboard.csv``: one row per cell, every metric, utility and cost;
- ``site/leaderboard.json``: the same rows plus the per-task attack x defense matrices;
- ``site/index.html``: one self-contained page (inline CSS, JS and SVG; images as data URIs;
  a Content-Security-Policy that lets no request leave it), rendered from
  ``templates/index.html.j2`` with autoescaping. Per suite and task: the attack x defense heat
  map, every metric (mean and std over seeds, n), the rankings (``leaderboard.rankings``), the
  privacy-utility chart (``leaderboard.charts``), what the reconstructions look like
  (``record["examples"]``), and each record's provenance; then a card per method. Filters by
  task, access level and defense kind, and sortable columns, run in the page.
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
from leaderboard.charts import privacy_utility_chart, roc_chart
from leaderboard.rankings import attack_ranking, defense_ranking

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
    with s the sample standard deviation (ddof 1); NaN with one seed."""
    n = counts.reindex(std.index).astype(float)
    t = pd.Series(scipy.stats.t.ppf(0.975, (n - 1).clip(lower=1)), index=std.index)
    halves = std.mul(t / n.pow(0.5), axis=0)
    return halves.where(n > 1)


def aggregate(frame: pd.DataFrame, value_columns: list[str]) -> pd.DataFrame:
    """One row per cell: mean over ok seeds, their sample std (ddof 1) and the half-width of
    the mean's 95% t-interval over seeds (``<column>_ci95``), seed counts, the first error."""
    ok = frame[frame.status == "ok"]
    grouped = ok.groupby(CELL_KEYS, sort=True)
    table = grouped[value_columns].mean()
    std = grouped[value_columns].std(ddof=1)
    halves = t_interval_halves(std, grouped.size()).add_suffix("_ci95")
    table = table.join(std.add_suffix("_std")).join(halves).join(grouped.size().rename("n_seeds"))
    failed = frame[frame.status != "ok"].groupby(CELL_KEYS)
    failures = failed.size().rename("n_failed").to_frame().join(failed["error"].first())
    meta = frame.groupby(CELL_KEYS)[
        ["modality", "access", "defense_kind", "primary_metric"]
    ].first()
    table = meta.join(table, how="left").join(failures, how="left")
    table["n_seeds"] = table["n_seeds"].fillna(0).astype(int)
    table["n_failed"] = table["n_failed"].fillna(0).astype(int)
    return table.reset_index()


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
        values = (
            group.pivot(index="attack", columns="defense", values=primary)
            if primary in group
            else pd.DataFrame(index=attacks, columns=defenses, dtype=float)
        )
        values = values.reindex(index=attacks, columns=defenses).astype(float)
        halves = (
            group.pivot(index="attack", columns="defense", values=f"{primary}_ci95")
            .reindex(index=attacks, columns=defenses)
            .astype(float)
            if f"{primary}_ci95" in group
            else None
        )
        finite = values.stack().dropna()
        low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 1.0)
        access = group.groupby("attack").access.first()
        kinds = group.groupby("defense").defense_kind.first()
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
                            "value": value,
                            "kind": kinds[defense],
                            "share": share if higher else 1 - share,
                            "ci95": _finite(cell.get(f"{primary}_ci95")),
                            "n": int(cell.n_seeds),
                            "failed": int(cell.n_failed),
                            "reason": str(cell.error) if cell.n_failed else "",
                        }
                    )
            matrix.append(
                {
                    "attack": attack,
                    "access": access[attack],
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
        defense_rows = defense_ranking(values, higher, utility_of, halves)
        for row in defense_rows:
            row["kind"] = kinds[row["defense"]]
            row["reported"] = reported_value(task_records, "defense", row["defense"], primary)
        attack_rows = attack_ranking(values, higher, halves)
        for row in attack_rows:
            row["access"] = access[row["attack"]]
            row["reported"] = reported_value(task_records, "attack", row["attack"], primary)
        sections.append(
            {
                "suite": suite,
                "task": task,
                "modality": group.modality.iloc[0],
                "primary": primary,
                "higher": higher,
                "attacks": attacks,
                "matrix": matrix,
                "metrics": [
                    m
                    for m in sorted(directions)
                    if not m.startswith("utility_") and m in group and group[m].notna().any()
                ],
                "defenses": [
                    {
                        "name": d,
                        "kind": kinds[d],
                        "url": (citations.get(("defense", d)) or {}).get("url"),
                        "utility": utility_of[d],
                    }
                    for d in defenses
                ],
                "attack_ranking": attack_rows,
                "defense_ranking": defense_rows,
                "chart": privacy_utility_chart(defense_rows, primary, higher),
                "examples": example_views(_examples(task_records), attacks, defenses),
                "provenance": provenance_rows(task_records),
                "rows": group.to_dict("records"),
            }
        )
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
        cells = aggregate(frame, value_columns)
        sections = task_sections(cells, records, directions)
        cards = method_cards(records, sections)
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
