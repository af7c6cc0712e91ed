"""The README's tables of tasks, attacks, defenses and metrics, generated from the registry and
the YAMLs under ``benchmark/conf/``, so that they cannot drift from what the harness runs.

Each table sits in README.md between two marker comments::

    <!-- tables:attacks:start -->
    ...generated...
    <!-- tables:attacks:end -->

``python -m benchmark.doc_tables`` (``make docs``) rewrites them in place;
``python -m benchmark.doc_tables --check`` exits 1, naming that command, when they are stale.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Callable

import yaml

from benchmark.registry import (
    ACCESS_LEVELS,
    ATTACKS,
    DEFENSE_KINDS,
    DEFENSES,
    METRICS,
    MODALITIES,
    TASKS,
    Citation,
    Entry,
    load_all,
)

PROJECT = Path(__file__).resolve().parent.parent
CONF = PROJECT / "benchmark" / "conf"
README = PROJECT / "README.md"
REGENERATE = "make docs (python -m benchmark.doc_tables)"
# YAML keys that are not a method's settings: its name, Hydra's composition list, and the
# paper's reported numbers (outside the config hash)
NOT_SETTINGS = ("name", "defaults", "reported")


def cite(citation: Citation | None) -> str:
    """``[Zhang et al., CVPR 2020](url)``: short enough to keep a table row on one screen."""
    if citation is None:
        return ""
    return f"[{escape(citation.authors)}, {escape(citation.venue)} {citation.year}]({citation.url})"


def escape(text: str) -> str:
    return text.replace("|", "\\|")


def code(name: str) -> str:
    return f"`{name}`"


def modalities(entry: Entry) -> str:
    return ", ".join(sorted(entry.modalities, key=MODALITIES.index))


def runs_on(entry: Entry) -> str:
    return "GPU" if getattr(entry.obj, "runs_on_gpu", False) else "CPU"


def markdown_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def suites_of_tasks() -> dict[str, list[str]]:
    """task name -> the suites (``conf/suite/*.yaml``) whose ``tasks`` list it."""
    suites: dict[str, list[str]] = {}
    for path in sorted((CONF / "suite").glob("*.yaml")):
        for task in yaml.safe_load(path.read_text()).get("tasks") or []:
            suites.setdefault(task, []).append(path.stem)
    return suites


def yaml_settings(group: str, name: str) -> str:
    """A method YAML's own scalar settings as ``key=value``, in the file's order."""
    path = CONF / group / f"{name}.yaml"
    if not path.is_file():
        return ""
    config = yaml.safe_load(path.read_text()) or {}
    settings = [
        f"{key}={value}"
        for key, value in config.items()
        if key not in NOT_SETTINGS and not isinstance(value, dict)
    ]
    return ", ".join(code(setting) for setting in settings)


def modality_order(entry: Entry) -> int:
    return MODALITIES.index(entry.modalities[0])


def tasks_table() -> str:
    suites = suites_of_tasks()
    rows = []
    for entry in sorted(TASKS.entries(), key=lambda e: (modality_order(e), e.name)):
        rows.append(
            (
                code(entry.name),
                modalities(entry),
                ", ".join(suites.get(entry.name, [])) or "on request",
                code(entry.obj.primary_metric),
                runs_on(entry),
                cite(entry.citation),
            )
        )
    header = ("task", "modality", "suites", "primary metric", "runs on", "source")
    return markdown_table(header, rows)


def attacks_table() -> str:
    def order(entry: Entry) -> tuple:
        return (modality_order(entry), ACCESS_LEVELS.index(entry.access), entry.name)

    rows = [
        (
            code(entry.name),
            "none (floor)" if entry.access == "none" else entry.access,
            modalities(entry),
            runs_on(entry),
            cite(entry.citation),
        )
        for entry in sorted(ATTACKS.entries(), key=order)
    ]
    return markdown_table(("attack", "access", "modalities", "runs on", "paper"), rows)


def defenses_table() -> str:
    def order(entry: Entry) -> tuple:
        return (DEFENSE_KINDS.index(entry.defense_kind), entry.name)

    rows = [
        (
            code(entry.name),
            entry.defense_kind,
            modalities(entry),
            yaml_settings("defense", entry.name),
            runs_on(entry),
            cite(entry.citation),
        )
        for entry in sorted(DEFENSES.entries(), key=order)
    ]
    header = ("defense", "kind", "modalities", "settings (YAML)", "runs on", "paper")
    return markdown_table(header, rows)


def metrics_table() -> str:
    rows = [
        (
            code(entry.name),
            "higher" if entry.higher_is_better else "lower",
            modalities(entry),
            cite(entry.citation),
        )
        for entry in sorted(METRICS.entries(), key=lambda e: (modality_order(e), e.name))
    ]
    return markdown_table(("metric", "better", "modalities", "source"), rows)


TABLES: dict[str, Callable[[], str]] = {
    "tasks": tasks_table,
    "attacks": attacks_table,
    "defenses": defenses_table,
    "metrics": metrics_table,
}


def marker(name: str, end: str) -> str:
    return f"<!-- tables:{name}:{end} -->"


def render(text: str) -> str:
    """``text`` with every table between its markers regenerated; a missing pair is an error."""
    load_all()
    for name, table in TABLES.items():
        pattern = re.compile(
            re.escape(marker(name, "start")) + r".*?" + re.escape(marker(name, "end")), re.DOTALL
        )
        if not pattern.search(text):
            raise ValueError(
                f"the markers {marker(name, 'start')} ... {marker(name, 'end')} are missing"
            )
        block = f"{marker(name, 'start')}\n{table()}\n{marker(name, 'end')}"
        text = pattern.sub(lambda _: block, text, count=1)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmark.doc_tables",
        description="Regenerate the README's tables of tasks, attacks, defenses and metrics.",
    )
    parser.add_argument("--check", action="store_true", help="exit 1 when they are not current")
    parser.add_argument("--readme", type=Path, default=README, help="the file to rewrite")
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    try:
        current = render(text)
    except ValueError as error:
        print(f"{args.readme}: {error}", file=sys.stderr)
        return 1
    if args.check:
        if current != text:
            print(
                f"{args.readme}: the tables of tasks, attacks, defenses and metrics are not "
                f"current (the registry or a YAML changed); run {REGENERATE}",
                file=sys.stderr,
            )
            return 1
        print(f"{args.readme}: tables are current")
        return 0
    if current != text:
        args.readme.write_text(current)
        print(f"{args.readme}: tables rewritten")
    else:
        print(f"{args.readme}: tables already current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
