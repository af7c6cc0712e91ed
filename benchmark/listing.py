"""``invbench list``: every registered task, attack, defense and metric, without importing them.

Importing the plugins (torch, torch_geometric, transformers, ...) takes 10 s, longer than the
listing is worth waiting for. What the registries hold after :func:`benchmark.registry.load_all`
is stored in an index in the cache folder (``paths.cache``), keyed by a digest of every source
file the registrations can depend on (the plugin packages and ``benchmark/``): a new method
(``invbench new``), an edited declaration or a removed file changes the digest, and the next
``invbench list`` imports the plugins once and writes the index again. A process that has the
registries imported already (a test that registered a method of its own) lists them directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the packages whose modules load_all imports (benchmark/registry.py), and the core they build on
PLUGIN_PACKAGES = ("metrics", "tasks", "attacks", "defenses")
SOURCES = (*PLUGIN_PACKAGES, "benchmark")
SECTIONS = ("TASKS", "ATTACKS", "DEFENSES", "METRICS")
COLUMNS = ("name", "modalities", "level", "gpu", "version")  # then the citation, unpadded
INDEX_FORMAT = 1


def index_path() -> Path:
    """The index's file, in the cache folder (config.yaml's ``paths.cache`` and its default)."""
    return Path(os.environ.get("INVBENCH_CACHE") or ".invbench/cache") / "registry-index.json"


def source_digest(root: Path = ROOT) -> str:
    """sha256 over the path and bytes of every Python file of the plugins and the core."""
    digest = hashlib.sha256()
    for package in SOURCES:
        for path in sorted((root / package).rglob("*.py")):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def entry_row(kind: str, entry) -> dict[str, str]:
    """What ``invbench list`` shows of one registry entry."""
    if kind == "ATTACKS":
        level = f"access={entry.access}"
    elif kind == "DEFENSES":
        level = f"kind={entry.defense_kind}"
    elif kind == "TASKS":
        level = "real data" if entry.extra.get("real_data") else "embedded"
    else:
        level = ""
    cite = entry.citation
    # which methods can run on a GPU (README: On GPUs); metrics run where scoring does
    gpu = (
        "" if kind == "METRICS" else ("gpu" if getattr(entry.obj, "runs_on_gpu", False) else "cpu")
    )
    return {
        "name": entry.name,
        "modalities": ",".join(entry.modalities),
        "level": level,
        "gpu": gpu,
        "version": f"v{entry.version}",
        "citation": f"{cite.short()}: {cite.title} <{cite.url}>" if cite else "-",
    }


def registry_rows() -> dict[str, list[dict[str, str]]]:
    """The rows of every registry, read from the registries themselves (plugins imported)."""
    from benchmark.registry import ATTACKS, DEFENSES, METRICS, TASKS, load_all

    load_all()
    registries = dict(zip(SECTIONS, (TASKS, ATTACKS, DEFENSES, METRICS)))
    return {
        kind: [entry_row(kind, entry) for entry in registry.entries()]
        for kind, registry in registries.items()
    }


def read_index(path: Path, digest: str) -> dict | None:
    """The index's rows when it was written from sources with this digest, else None."""
    try:
        index = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if index.get("format") != INDEX_FORMAT or index.get("sources") != digest:
        return None
    return index["rows"]


def write_index(path: Path, digest: str, rows: dict) -> None:
    """Written atomically; where the folder is not writable the next listing imports again."""
    text = json.dumps({"format": INDEX_FORMAT, "sources": digest, "rows": rows}, indent=1)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_text(text)
        os.replace(partial, path)
    except OSError:
        partial.unlink(missing_ok=True)


def listing_rows() -> dict[str, list[dict[str, str]]]:
    if "benchmark.registry" in sys.modules:  # registries in memory: they may hold more
        return registry_rows()
    digest = source_digest()
    rows = read_index(index_path(), digest)
    if rows is None:
        print("invbench list: indexing the registries (once per change of the code)", flush=True)
        rows = registry_rows()
        write_index(index_path(), digest, rows)
    return rows


def format_listing(rows: dict[str, list[dict[str, str]]]) -> str:
    """One section per registry; each column as wide as its longest value in any section, so the
    columns line up however long a name is."""
    every = [row for section in rows.values() for row in section]
    widths = {column: max((len(row[column]) for row in every), default=0) for column in COLUMNS}
    lines = []
    for title, section in rows.items():
        lines += ["", title]
        for row in section:
            padded = "  ".join(row[column].ljust(widths[column]) for column in COLUMNS)
            lines.append(f"  {padded}  {row['citation']}")
    return "\n".join(lines)
