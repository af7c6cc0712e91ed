"""Build the leaderboard from the run records alone.

``build_report(results, site)`` reads every record under ``results/``, aggregates the seeds of
each (suite, task, attack, defense) cell with pandas (mean, std, n), and writes:

- ``site/leaderboard.csv``: one row per cell, every metric, utility and cost;
- ``site/leaderboard.json``: the same rows plus the per-task attack x defense matrices;
- ``site/index.html``: one self-contained page (inline CSS and JS, no network), rendered from
  ``templates/index.html.j2`` with autoescaping.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, select_autoescape

from benchmark.cache import atomic_write_text
from benchmark.registry import ATTACKS, DEFENSES, TASKS, UnknownNameError, incompatibility, \
    load_all
from benchmark.results import iter_records

CELL_KEYS = ["suite", "task", "attack", "defense"]
TEMPLATES = Path(__file__).resolve().parent / "templates"


def flatten(record: dict) -> dict:
    row = {key: record.get(key) for key in (*CELL_KEYS, "seed", "status", "error", "modality",
                                            "access", "defense_kind", "primary_metric")}
    for name, metric in (record.get("metrics") or {}).items():
        row[name] = metric.get("value")
    for name, metric in (record.get("utility") or {}).items():
        row[f"utility_{name}"] = metric.get("value")
    for name in ("seconds", "peak_rss_mb", "queries"):
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


def aggregate(frame: pd.DataFrame, value_columns: list[str]) -> pd.DataFrame:
    """One row per cell: mean and std over ok seeds, seed counts, the first error text."""
    ok = frame[frame.status == "ok"]
    grouped = ok.groupby(CELL_KEYS, sort=True)
    table = grouped[value_columns].mean()
    std = grouped[value_columns].std(ddof=0).add_suffix("_std")
    table = table.join(std).join(grouped.size().rename("n_seeds"))
    failed = frame[frame.status != "ok"].groupby(CELL_KEYS)
    failures = failed.size().rename("n_failed").to_frame().join(failed["error"].first())
    meta = frame.groupby(CELL_KEYS)[["modality", "access", "defense_kind", "primary_metric"]].first()
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


def task_sections(cells: pd.DataFrame, records: list[dict],
                  directions: dict[str, bool]) -> list[dict]:
    citations = {}
    for record in records:
        for kind, citation in (record.get("citations") or {}).items():
            if citation:
                citations[(kind, record.get(kind))] = citation
    sections = []
    for (suite, task), group in cells.groupby(["suite", "task"], sort=True):
        primary = group.primary_metric.dropna().iloc[0]
        attacks = sorted(group.attack.unique())
        defenses = sorted(group.defense.unique(), key=lambda d: (d != "none", d))
        matrix = []
        values = [v for v in group[primary].dropna()] if primary in group else []
        low, high = (min(values), max(values)) if values else (0.0, 1.0)
        for attack in attacks:
            row = []
            for defense in defenses:
                hit = group[(group.attack == attack) & (group.defense == defense)]
                if hit.empty:
                    row.append({"state": "na", "reason": not_applicable_reason(task, attack,
                                                                               defense)})
                    continue
                cell = hit.iloc[0]
                value = _finite(cell.get(primary))
                if cell.n_seeds == 0 or value is None:
                    row.append({"state": "failed", "reason": str(cell.error)})
                else:
                    share = 0.5 if high == low else (value - low) / (high - low)
                    row.append({"state": "ok", "value": value, "share": share,
                                "std": _finite(cell.get(f"{primary}_std")),
                                "n": int(cell.n_seeds), "failed": int(cell.n_failed),
                                "reason": str(cell.error) if cell.n_failed else ""})
            matrix.append({"attack": attack, "access": group[group.attack == attack]
                           .access.iloc[0], "cells": row,
                           "url": (citations.get(("attack", attack)) or {}).get("url")})
        utility = (group.groupby("defense")["utility_test_accuracy"].mean()
                   if "utility_test_accuracy" in group else pd.Series(dtype=float))
        sections.append({
            "suite": suite, "task": task, "modality": group.modality.iloc[0], "primary": primary,
            "attacks": attacks, "matrix": matrix,
            "metrics": [m for m in sorted(directions) if not m.startswith("utility_")
                        and m in group and group[m].notna().any()],
            "defenses": [{"name": d, "kind": group[group.defense == d].defense_kind.iloc[0],
                          "url": (citations.get(("defense", d)) or {}).get("url"),
                          "utility": _finite(utility.get(d))} for d in defenses],
            "rows": group.to_dict("records"),
        })
    return sections


def build_report(results: Path, site: Path) -> Path:
    load_all()
    records = list(iter_records(results))
    site.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([flatten(r) for r in records])
    directions = metric_directions(records)
    value_columns = sorted(directions) + ["seconds", "peak_rss_mb", "queries"]
    if frame.empty:
        cells = pd.DataFrame(columns=CELL_KEYS)
        sections = []
    else:
        for column in value_columns:
            frame[column] = pd.to_numeric(frame.get(column), errors="coerce")
        cells = aggregate(frame, value_columns)
        sections = task_sections(cells, records, directions)
    cells.to_csv(site / "leaderboard.csv", index=False, float_format="%.6g")
    payload = {
        "schema_version": 1,
        "records": len(records),
        "metrics": directions,
        "cells": json.loads(cells.to_json(orient="records")),
        "tasks": [{k: v for k, v in s.items() if k != "rows"} for s in sections],
    }
    atomic_write_text(site / "leaderboard.json", json.dumps(payload, indent=2, default=str))
    environment = Environment(loader=FileSystemLoader(TEMPLATES),
                              autoescape=select_autoescape(["html", "j2"]))
    html = environment.get_template("index.html.j2").render(
        sections=sections, records=len(records), directions=directions, failed=int((frame.status != "ok").sum())
        if not frame.empty else 0)
    index = site / "index.html"
    atomic_write_text(index, html)
    return index
