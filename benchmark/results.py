"""Run records: one JSON file per cell, written atomically.

``results/<suite>/<task>/<attack>__<defense>__s<seed>.json``
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

from benchmark.cache import atomic_write_text

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


def record_path(results: Path, suite: str, task: str, attack: str, defense: str, seed: int) -> Path:
    return Path(results) / suite / task / f"{attack}__{defense}__s{seed}.json"


def write_record(path: Path, record: dict) -> None:
    atomic_write_text(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def read_record(path: Path) -> dict | None:
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        log.warning("ignoring unreadable record %s: %s", path, error)
        return None
    return record if isinstance(record, dict) and "status" in record else None


def iter_records(results: Path) -> Iterator[dict]:
    """Every readable record under ``results`` (hidden folders such as perf/ excluded)."""
    for path in sorted(Path(results).glob("*/*/*.json")):
        if any(part.startswith(".") for part in path.relative_to(results).parts):
            continue
        record = read_record(path)
        if record is not None:
            yield record
