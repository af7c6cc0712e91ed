"""The ``invbench`` command line.

    invbench run   [OVERRIDES]   one cell, e.g. task=digits attack=gmi defense=none seed=0
    invbench bench [OVERRIDES]   the suite's sweep (Hydra multirun), then the leaderboard
    invbench list                every registered task, attack, defense and metric
    invbench report              rebuild leaderboard/site/ from results/ alone
    invbench data NAME           download a dataset (online) or print where to put it
    invbench new attack|defense NAME [--modality ...] [--access ...|--kind ...] [--title ...]
                                 scaffold a new method's module and YAML (CONTRIBUTING.md)
    invbench check attack=NAME|defense=NAME|--all|--changed-since=GIT_REF
                                 schema + smoke runs on every compatible mini task: pass/fail

OVERRIDES are Hydra overrides. In ``bench``, ``attack=gmi,link-steal-0`` or
``'attack=[gmi,link-steal-0]'`` restricts the sweep; ``jobs=N`` runs N cells at once in
worker processes (default ``auto``: one per two cores, at least two; ``jobs=1`` runs them in
this process, one after the other). A ``hydra/launcher=...`` override replaces that choice.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import sys
import time
import warnings
from pathlib import Path

from hydra.errors import HydraException
from omegaconf import DictConfig

from benchmark.config import CONF_DIR, compose_config
from benchmark.errors import InvbenchError, MissingDataError
from benchmark.registry import (
    ATTACKS,
    DEFENSES,
    METRICS,
    TASKS,
    Registry,
    UnknownNameError,
    incompatibility,
    load_all,
)
from benchmark.runner import (
    attack_overrides,
    build_task,
    is_offline,
    resolve_paths,
    suite_overwritten,
)
from benchmark.workers import resolve_jobs, threads_per_worker

SWEPT = {"task": TASKS, "attack": ATTACKS, "defense": DEFENSES}


class UsageError(InvbenchError):
    pass


def split_overrides(overrides: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Separate the swept keys (task/attack/defense/seed/suite) from every other override."""
    chosen: dict[str, list[str]] = {}
    rest: list[str] = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in (*SWEPT, "seed", "suite"):
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            chosen[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            rest.append(override)
    return chosen, rest


def check_name(group: str, name: str, registry: Registry | None) -> None:
    yamls = sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))
    known = sorted(set(yamls) & set(registry.names())) if registry else yamls
    if name not in known:
        raise UnknownNameError(group, name, known)
    if registry is not None and name not in yamls:
        raise UsageError(
            f"{group} '{name}' is registered but has no YAML; add "
            f"benchmark/conf/{group}/{name}.yaml"
        )


def missing_data(cfg: DictConfig, task_name: str, overrides: list[str]) -> str | None:
    """The message for a task whose real data is absent, or None; ``overrides`` are the
    user's, of which the task's settings (``task.root=...``) count."""
    task_settings = [o for o in overrides if o.lstrip("+").startswith("task.")]
    task_cfg = compose_config([f"task={task_name}", *cfg_overrides(cfg), *task_settings])
    try:
        build_task(task_cfg)
    except MissingDataError as error:
        return str(error)
    return None


def quoted(value) -> str:
    """A value as a quoted Hydra override string: a path may hold '=', spaces or brackets."""
    return "'" + str(value).replace("'", "\\'") + "'"


def path_overrides(cfg: DictConfig) -> list[str]:
    """The paths as resolved here (environment variables read once, in this process), folders
    made absolute: a worker or a cluster job may start elsewhere."""
    return [
        *(f"paths.{k}={quoted(v)}" for k, v in resolve_paths(cfg).items()),
        f"paths.offline={cfg.paths.offline}",
    ]


def chosen_launcher(overrides: list[str]) -> str | None:
    """The ``launcher=NAME`` among the overrides (conf/launcher/: slurm, submitit-local)."""
    return next((o.partition("=")[2] for o in overrides if o.startswith("launcher=")), None)


def cfg_overrides(cfg: DictConfig) -> list[str]:
    return [*path_overrides(cfg), f"seed={cfg.seed}"]


def expand(values: list, registry: Registry) -> list[str]:
    return registry.names() if list(values) == ["all"] else [str(v) for v in values]


@contextlib.contextmanager
def launching_exactly(cells: list[list[str]]):
    """Make Hydra's basic sweeper launch exactly ``cells`` (one override list per job) as one
    batch, instead of the cartesian product of the command line's sweep.

    A Hydra sweep is a grid; the compatible cells of a suite are not (a white-box attack has
    no output-defense cells, graph attacks no image tasks), and one launch per grid left a
    worker idle at the end of each launch. The sweeper would also compose every job's config in
    this process before launching (about 0.2 s each, the workers idle meanwhile); each job
    composes its own anyway, and ``invbench bench`` has composed one config per task, attack
    and defense of the sweep (:func:`compose_each_method`), which catches an override that one
    method's settings lack. Hydra's own methods are restored on exit."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    replaced = {
        "split_arguments": staticmethod(lambda overrides, max_batch_size: [cells]),
        "validate_batch_is_legal": lambda self, batch: None,
    }
    saved = {name: BasicSweeper.__dict__.get(name) for name in replaced}
    for name, method in replaced.items():
        setattr(BasicSweeper, name, method)
    try:
        yield
    finally:
        for name, method in saved.items():
            if method is None:  # inherited from Hydra's Sweeper
                delattr(BasicSweeper, name)
            else:
                setattr(BasicSweeper, name, method)


def refuse_overwritten(configs: list[DictConfig], overrides: list[str]) -> None:
    """Exit 2 before any cell runs where the suite would overwrite an ``attack.`` override."""
    problems = [message for cfg in configs for message in suite_overwritten(cfg, overrides)]
    if problems:
        raise UsageError("\n".join(dict.fromkeys(problems)))


def compose_each_method(sweep: dict[str, list[str]], overrides: list[str]) -> None:
    """Compose the config of each task, attack and defense of the sweep once with the user's
    overrides, so that one that a method's settings lack (``attack.lambda_id=3`` with an
    attack that has no lambda_id) exits 2 with Hydra's hint before any cell runs. Only the
    groups whose settings are overridden are composed: one composition costs a third of a
    second, and composing all 37 methods of the mini delayed its first cell by 12 s."""
    first = {key: values[0] for key, values in sweep.items() if key in SWEPT and values}
    touched = {o.lstrip("+~").partition(".")[0] for o in overrides if "." in o.partition("=")[0]}
    for key in SWEPT:
        if key not in touched:
            continue
        for value in sweep.get(key, [])[1:]:
            compose_config([*(f"{k}={v}" for k, v in {**first, key: value}.items()), *overrides])


def run_hydra(argv: list[str]) -> list[dict]:
    from benchmark import app

    saved = sys.argv
    sys.argv = ["invbench", *argv]
    app.FINISHED.clear()
    try:
        app.cell()
    finally:
        sys.argv = saved
    return list(app.FINISHED)


def command_run(overrides: list[str]) -> int:
    chosen, rest = split_overrides(overrides)
    for key, values in chosen.items():
        if len(values) != 1:
            raise UsageError(
                f"invbench run takes one {key}, got {values}; use invbench bench to sweep several"
            )
        if key in SWEPT:
            check_name(key, values[0], SWEPT[key])
        if key == "suite":
            check_name("suite", values[0], None)
    single = [f"{k}={v[0]}" for k, v in chosen.items()]
    settings = [o for o in rest if not o.startswith("hydra")]
    cfg = compose_config([*single, *settings])
    refuse_overwritten([cfg], settings)
    build_task(cfg)  # raises MissingDataError before Hydra starts or any record is written
    records = run_hydra([*single, *rest, "show_record=true"])
    return 1 if any(r["status"] != "ok" for r in records) else 0


def drop_stand_ins(tasks: list[str], stand_ins: dict[str, str]) -> list[str]:
    """The suite's tasks without the embedded stand-ins whose real task runs (the suite's
    ``stand_ins``: stand-in -> real task)."""
    kept = []
    for task in tasks:
        real = stand_ins.get(task)
        if real in tasks:
            print(
                f"[skip] task '{task}': it stands in for '{real}', whose data is present "
                f"(task={task} runs it)",
                flush=True,
            )
        else:
            kept.append(task)
    return kept


def compatible_cells(sweep: dict[str, list[str]]) -> list[list[str]]:
    """Every compatible cell of the sweep once, as (task, attack, defense, seed) overrides: n/a
    cells are never launched (each launch costs a job). Tasks take turns, so consecutive cells
    belong to different tasks and two workers train two tasks' targets and GAN priors side by
    side instead of one waiting on the other's lock (a file lock per artifact)."""
    per_task = []
    for task_name in sweep["task"]:
        task = TASKS.get(task_name)
        per_task.append(
            [
                [f"task={task_name}", f"attack={attack}", f"defense={defense}", f"seed={seed}"]
                for attack, defense, seed in itertools.product(
                    sweep["attack"], sweep["defense"], sweep["seed"]
                )
                if incompatibility(task, ATTACKS.get(attack), DEFENSES.get(defense)) is None
            ]
        )
    return [cell for turn in itertools.zip_longest(*per_task) for cell in turn if cell is not None]


def command_bench(overrides: list[str]) -> int:
    chosen, rest = split_overrides(overrides)
    suite = chosen.get("suite", ["mini"])
    if len(suite) != 1:
        raise UsageError("invbench bench runs one suite at a time")
    check_name("suite", suite[0], None)
    if chosen_launcher(rest):
        check_name("launcher", chosen_launcher(rest), None)
    for key, registry in SWEPT.items():  # before composing: an unknown name gets its message
        for value in chosen.get(key, []):
            check_name(key, value, registry)
    # composed with the first chosen task/attack/defense, so that overrides of their settings
    # (defense.lambda_x=0.5 with defense=bido) compose here as they will in each cell
    first = [f"{key}={chosen[key][0]}" for key in SWEPT if chosen.get(key)]
    settings = [o for o in rest if not o.startswith("hydra")]
    cfg = compose_config([f"suite={suite[0]}", *first, *settings])
    sweep: dict[str, list[str]] = {}
    for key, registry in SWEPT.items():
        if chosen.get(key):  # checked above
            sweep[key] = chosen[key]
            continue
        sweep[key] = expand(cfg.suite[f"{key}s"], registry)
        for value in sweep[key]:  # a suite file may name a method that no longer exists
            check_name(key, value, registry)
    sweep["seed"] = chosen.get("seed") or [str(s) for s in cfg.suite.seeds]

    tasks = []
    for task_name in sweep["task"]:
        message = missing_data(cfg, task_name, settings)
        if message is None:
            tasks.append(task_name)
        elif "task" in chosen:
            raise MissingDataError(message)
        else:
            print(
                f"[skip] task '{task_name}': its data is not under the data root "
                f"{Path(str(cfg.paths.data)).resolve()} (set INVBENCH_DATA to add it)",
                flush=True,
            )
    if "task" not in chosen:
        tasks = drop_stand_ins(tasks, dict(cfg.suite.get("stand_ins") or {}))
    sweep["task"] = tasks
    compose_each_method(sweep, [f"suite={suite[0]}", *settings])
    cells = compatible_cells(sweep)
    if attack_overrides(settings):  # the first cell of each (task, attack) pair, composed
        first_of_each = {(cell[0], cell[1]): cell for cell in reversed(cells)}.values()
        refuse_overwritten(
            [compose_config([f"suite={suite[0]}", *cell, *settings]) for cell in first_of_each],
            settings,
        )
    total = len(tasks) * len(sweep["attack"]) * len(sweep["defense"]) * len(sweep["seed"])
    print(
        f"invbench bench: suite {suite[0]}: {len(tasks)} tasks x {len(sweep['attack'])} "
        f"attacks x {len(sweep['defense'])} defenses x {len(sweep['seed'])} seeds: "
        f"{len(cells)} cells to run, {total - len(cells)} not applicable (n/a, not launched)",
        flush=True,
    )
    rest = [*rest, *parallel_overrides(cfg, rest)]
    hydra_overrides = [o for o in rest if o.startswith("hydra")]
    cells_overrides = [
        [f"suite={suite[0]}", *cell, *(o for o in rest if o not in hydra_overrides)]
        for cell in cells
    ]
    if not cells_overrides:
        print("invbench bench: no compatible cell to run", flush=True)
    else:  # Hydra composes its base config with the first cell's overrides
        with launching_exactly(cells_overrides):
            run_hydra(["--multirun", *cells_overrides[0], *hydra_overrides])
    return command_report(["--results", str(cfg.paths.results), "--site", str(cfg.paths.site)])


def parallel_overrides(cfg: DictConfig, rest: list[str]) -> list[str]:
    """Hydra overrides that run the sweep on ``jobs`` joblib workers (none when jobs is 1 or
    the user chose a launcher; a cluster launcher, ``launcher=slurm``, gets the paths)."""
    launcher = chosen_launcher(rest)
    if launcher:
        print(
            f"invbench bench: every cell is a job of launcher={launcher} (logs under "
            f"{resolve_paths(cfg)['results']}/.submitit)",
            flush=True,
        )
        return path_overrides(cfg)
    try:
        jobs = resolve_jobs(cfg.jobs)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if jobs == 1 or any(o.startswith(("hydra/launcher", "hydra.launcher")) for o in rest):
        return []
    print(
        f"invbench bench: {jobs} worker processes, {threads_per_worker(jobs)} torch "
        f"thread(s) each (jobs=1 runs the cells one at a time)",
        flush=True,
    )
    # Workers are reused across sweeps and keep the environment they started with: pass the
    # paths resolved here rather than letting each worker read INVBENCH_* again.
    return [
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={jobs}",
        f"workers={jobs}",
        *path_overrides(cfg),
    ]


def command_list(_: list[str]) -> int:
    load_all()
    for title, registry in (
        ("TASKS", TASKS),
        ("ATTACKS", ATTACKS),
        ("DEFENSES", DEFENSES),
        ("METRICS", METRICS),
    ):
        print(f"\n{title}")
        for entry in registry.entries():
            if registry is ATTACKS:
                level = f"access={entry.access}"
            elif registry is DEFENSES:
                level = f"kind={entry.defense_kind}"
            elif registry is TASKS:
                level = "real data" if entry.extra.get("real_data") else "embedded"
            else:
                level = ""
            cite = entry.citation
            citation = f"{cite.short()}: {cite.title} <{cite.url}>" if cite else "-"
            # which methods can run on a GPU (README: On GPUs); metrics run where scoring does
            gpu = (
                ""
                if registry is METRICS
                else ("gpu" if getattr(entry.obj, "runs_on_gpu", False) else "cpu")
            )
            print(
                f"  {entry.name:<16} {','.join(entry.modalities):<18} {level:<16} {gpu:<4}"
                f"v{entry.version:<5} {citation}"
            )
    return 0


def command_report(argv: list[str]) -> int:
    from leaderboard.report import build_report

    parser = argparse.ArgumentParser(prog="invbench report")
    parser.add_argument("--results", default=os.environ.get("INVBENCH_RESULTS", "results"))
    parser.add_argument("--site", default=os.environ.get("INVBENCH_SITE", "leaderboard/site"))
    args = parser.parse_args(argv)
    index = build_report(Path(args.results), Path(args.site))
    print(f"leaderboard: {index.resolve()}", flush=True)
    return 0


def command_data(argv: list[str]) -> int:
    from benchmark.downloads import DATASETS

    parser = argparse.ArgumentParser(prog="invbench data")
    parser.add_argument("name", help=f"one of: {', '.join(sorted(DATASETS))}")
    parser.add_argument("--root", default=None, help="data root (default: paths.data)")
    args = parser.parse_args(argv)
    if args.name not in DATASETS:
        raise UnknownNameError("dataset", args.name, sorted(DATASETS))
    cfg = compose_config([])
    root = Path(args.root or str(cfg.paths.data)).expanduser().resolve()
    print(DATASETS[args.name](root, is_offline(cfg)), flush=True)
    return 0


def command_new(argv: list[str]) -> int:
    from benchmark.scaffold import Metadata, create_method

    parser = argparse.ArgumentParser(prog="invbench new")
    parser.add_argument("kind", choices=["attack", "defense"])
    parser.add_argument("name", help="lower-case, hyphenated (e.g. my-attack)")
    parser.add_argument("--modality", default="image", help="image, graph or text")
    parser.add_argument(
        "--access", default="whitebox", help="attacks: whitebox, scores, topk, label or none"
    )
    parser.add_argument(
        "--kind",
        dest="defense_kind",
        default="output",
        help="defenses: train (changes the weights) or output (what is released)",
    )
    parser.add_argument("--title", default="", help="the paper's title")
    parser.add_argument("--authors", default="", help='e.g. "Zhang et al."')
    parser.add_argument("--venue", default="", help='e.g. "CVPR"')
    parser.add_argument("--year", type=int, default=time.localtime().tm_year)
    parser.add_argument("--url", default="", help="a link to the paper (arXiv, DOI)")
    args = parser.parse_args(argv)
    paths = create_method(
        args.kind,
        args.name,
        Metadata(args.title, args.authors, args.venue, args.year, args.url),
        modality=args.modality,
        access=args.access,
        defense_kind=args.defense_kind,
    )
    for path in paths:
        print(f"created {path}")
    print(
        f"next: write the marked line of {paths[0].name}, then "
        f"`invbench check {args.kind}={args.name}` (CONTRIBUTING.md)"
    )
    return 0


def command_check(argv: list[str]) -> int:
    from benchmark.check import changed_paths, format_table, methods_for_paths, passed, run_check

    since = next((a.partition("=")[2] for a in argv if a.startswith("--changed-since=")), None)
    chosen, rest = split_overrides([a for a in argv if not a.startswith("--")])
    methods = [(kind, name) for kind in ("attack", "defense") for name in chosen.get(kind, [])]
    if "--all" in argv:
        methods = [("attack", n) for n in ATTACKS.names()] + [
            ("defense", n) for n in DEFENSES.names()
        ]
    elif since:
        methods = methods_for_paths(changed_paths(since))
        if not methods:
            print(f"invbench check: no method's module or YAML changed since {since}")
            return 0
    if not methods:
        raise UsageError(
            "name what to check: invbench check attack=NAME, defense=NAME, --all "
            "or --changed-since=GIT_REF"
        )
    for kind, name in methods:
        SWEPT[kind].get(name)  # an unknown name exits 2 with the closest match
    cfg = compose_config(rest)
    tasks = chosen.get("task") or list(compose_config(["suite=mini"]).suite.tasks)
    skipped = {t: reason for t in tasks if (reason := missing_data(cfg, t, rest))}
    runnable = [t for t in tasks if t not in skipped]
    failed = 0
    for kind, name in methods:
        base = [o for o in [*path_overrides(cfg), *rest] if not o.startswith("paths.results=")]
        problems, cells = run_check(kind, name, runnable, base)
        print(format_table(kind, name, problems, cells, skipped), flush=True)
        failed += not passed(problems, cells)
    if len(methods) > 1:
        print(f"invbench check: {len(methods) - failed} of {len(methods)} methods pass")
    return 1 if failed else 0


COMMANDS = {
    "run": command_run,
    "bench": command_bench,
    "list": command_list,
    "report": command_report,
    "data": command_data,
    "new": command_new,
    "check": command_check,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Deprecation chatter from dependencies' imports hides the one line per cell users read.
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("transformers").setLevel(logging.ERROR)
    load_all()
    try:
        return COMMANDS[argv[0]](argv[1:])
    except (InvbenchError, UnknownNameError, HydraException) as error:
        # HydraException: an override that does not compose (a misspelt key, a bad value)
        print(f"invbench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
