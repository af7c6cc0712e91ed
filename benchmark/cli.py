"""The ``invbench`` command line.

    invbench run   [OVERRIDES]   one cell, e.g. task=digits attack=gmi defense=none seed=0
                   [--cfg job|hydra|all [--resolve]]   print the cell's config, run nothing
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
``invbench run --help`` and ``invbench bench --help`` list the overrides and their choices.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import re
import shutil
import sys
import textwrap
import time
from pathlib import Path
from typing import TYPE_CHECKING

from benchmark.config import CONF_DIR, compose_config, group_choices
from benchmark.errors import InvbenchError, MissingDataError
from benchmark.progress import EVENTS_KEY, SweepProgress
from benchmark.quiet import quiet_libraries
from benchmark.workers import resolve_jobs, threads_per_worker

# The registries and the runner import torch and every plugin (10 s): the functions that use
# them import them, so that `invbench list` and `--help` answer without (benchmark/listing.py).
if TYPE_CHECKING:
    from omegaconf import DictConfig

    from benchmark.registry import Registry

SWEPT_KEYS = ("task", "attack", "defense")
# Hydra's own options that `invbench run` hands to Hydra, each with whether it takes a value;
# every other argument is an override
HYDRA_OPTIONS = {"--cfg": True, "-c": True, "--package": True, "-p": True, "--resolve": False}
# benchmark/app.py: the launcher has checked the metrics' weights; the cells never download them
WEIGHTS_CHECKED = "++weights_checked=true"


class UsageError(InvbenchError):
    pass


def swept() -> dict[str, Registry]:
    """The registry of each swept config group."""
    from benchmark.registry import ATTACKS, DEFENSES, TASKS

    return {"task": TASKS, "attack": ATTACKS, "defense": DEFENSES}


def split_overrides(overrides: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Separate the swept keys (task/attack/defense/seed/suite) from every other override."""
    chosen: dict[str, list[str]] = {}
    rest: list[str] = []
    for override in overrides:
        key, sep, value = override.partition("=")
        if sep and key in (*SWEPT_KEYS, "seed", "suite"):
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                value = value[1:-1]
            chosen[key] = [v.strip() for v in value.split(",") if v.strip()]
        else:
            rest.append(override)
    return chosen, rest


def split_options(command: str, argv: list[str]) -> tuple[list[str], list[str]]:
    """Hydra's options (``--cfg job``, ``--resolve``) apart from the overrides; any other
    argument that starts with ``-`` is a usage error, not an override for Hydra's parser."""
    options: list[str] = []
    overrides: list[str] = []
    arguments = iter(argv)
    for argument in arguments:
        name = argument.partition("=")[0]
        if name in HYDRA_OPTIONS and command == "run":
            options.append(argument)
            if HYDRA_OPTIONS[name] and "=" not in argument:
                options.append(next(arguments, ""))
        elif name in HYDRA_OPTIONS:
            raise UsageError(
                f"invbench {command} does not take {name}: `invbench run OVERRIDES {argument} "
                f"job` prints the config of one cell"
            )
        elif argument.startswith("-"):
            raise UsageError(
                f"invbench {command}: unknown option '{argument}'; "
                f"`invbench {command} --help` lists what it takes"
            )
        else:
            overrides.append(argument)
    return options, overrides


def check_name(group: str, name: str, registry: Registry | None) -> None:
    from benchmark.registry import UnknownNameError

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
    from benchmark.runner import build_task

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
    from benchmark.runner import resolve_paths

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


def check_metric_weights(cfg: DictConfig, modalities: set[str]) -> None:
    """Once per sweep (or run), before any cell: each metric of these modalities whose weights
    file is absent is fetched here when online, else named on one line with where to put the
    file. The cells then never try a download (``WEIGHTS_CHECKED``): a metric without its file
    is unavailable in their records, with the same reason."""
    from benchmark.registry import METRICS
    from benchmark.runner import is_offline, resolve_paths

    for entry in METRICS.entries():
        weights = entry.extra.get("weights")
        if weights is None or not modalities & set(entry.modalities) or weights().exists():
            continue
        try:
            print(entry.extra["fetch_weights"](resolve_paths(cfg)["data"], is_offline(cfg)))
        except Exception as error:  # offline, or the download failed: the reason names the file
            print(f"[unavailable] metric '{entry.name}': {error}; its cells record it as n/a")
        sys.stdout.flush()


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
    from benchmark.runner import suite_overwritten

    problems = [message for cfg in configs for message in suite_overwritten(cfg, overrides)]
    if problems:
        raise UsageError("\n".join(dict.fromkeys(problems)))


def compose_each_method(sweep: dict[str, list[str]], overrides: list[str]) -> None:
    """Compose the config of each task, attack and defense of the sweep once with the user's
    overrides, so that one that a method's settings lack (``attack.lambda_id=3`` with an
    attack that has no lambda_id) exits 2 with Hydra's hint before any cell runs. Only the
    groups whose settings are overridden are composed: one composition costs a third of a
    second, and composing all 37 methods of the mini delayed its first cell by 12 s."""
    first = {key: values[0] for key, values in sweep.items() if key in SWEPT_KEYS and values}
    touched = {o.lstrip("+~").partition(".")[0] for o in overrides if "." in o.partition("=")[0]}
    for key in SWEPT_KEYS:
        if key not in touched:
            continue
        for value in sweep.get(key, [])[1:]:
            compose_config([*(f"{k}={v}" for k, v in {**first, key: value}.items()), *overrides])


def prints_config_only(argv: list[str]) -> bool:
    """``invbench run ... --cfg job``: Hydra prints the config, no plugin is needed."""
    return argv[0] == "run" and any(a.partition("=")[0] in ("--cfg", "-c") for a in argv[1:])


def show_config(argv: list[str]) -> None:
    """Hydra's ``--cfg job|hydra|all`` on the cell's config, through an app of the same config
    as benchmark/app.py's that Hydra never calls: the cell's app imports torch and the runner."""
    import hydra

    @hydra.main(config_path="conf", config_name="config", version_base="1.3")
    def configured(cfg: DictConfig) -> None:
        raise AssertionError("Hydra runs no task with --cfg")

    saved = sys.argv
    sys.argv = ["invbench", *argv]
    try:
        configured()
    finally:
        sys.argv = saved


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


def command_run(argv: list[str]) -> int:
    from benchmark.runner import build_task

    options, overrides = split_options("run", argv)
    chosen, rest = split_overrides(overrides)
    for key, values in chosen.items():
        if len(values) != 1:
            raise UsageError(
                f"invbench run takes one {key}, got {values}; use invbench bench to sweep several"
            )
        if key in SWEPT_KEYS:  # with --cfg the plugins are not imported: the YAMLs tell
            check_name(key, values[0], None if options else swept()[key])
        if key == "suite":
            check_name("suite", values[0], None)
    single = [f"{k}={v[0]}" for k, v in chosen.items()]
    settings = [o for o in rest if not o.startswith("hydra")]
    cfg = compose_config([*single, *settings])
    if options:
        show_config([*single, *rest, *options])
        return 0
    refuse_overwritten([cfg], settings)
    task = build_task(cfg)  # raises MissingDataError before Hydra starts or any record is written
    check_metric_weights(cfg, {task.modality})
    records = run_hydra([*single, *rest, "show_record=true", WEIGHTS_CHECKED])
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
    from benchmark.registry import ATTACKS, DEFENSES, TASKS, incompatibility

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


def sweep_of(cfg: DictConfig, chosen: dict[str, list[str]], settings: list[str]) -> dict:
    """The sweep's tasks (those whose data is present), attacks, defenses and seeds."""
    sweep: dict[str, list[str]] = {}
    for key, registry in swept().items():
        if chosen.get(key):  # checked by command_bench
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
    return sweep


def command_bench(argv: list[str]) -> int:
    _, overrides = split_options("bench", argv)
    chosen, rest = split_overrides(overrides)
    suite = chosen.get("suite", ["mini"])
    if len(suite) != 1:
        raise UsageError("invbench bench runs one suite at a time")
    check_name("suite", suite[0], None)
    if chosen_launcher(rest):
        check_name("launcher", chosen_launcher(rest), None)
    for key, registry in swept().items():  # before composing: an unknown name gets its message
        for value in chosen.get(key, []):
            check_name(key, value, registry)
    # composed with the first chosen task/attack/defense, so that overrides of their settings
    # (defense.lambda_x=0.5 with defense=bido) compose here as they will in each cell
    first = [f"{key}={chosen[key][0]}" for key in SWEPT_KEYS if chosen.get(key)]
    settings = [o for o in rest if not o.startswith("hydra")]
    cfg = compose_config([f"suite={suite[0]}", *first, *settings])
    sweep = sweep_of(cfg, chosen, settings)
    compose_each_method(sweep, [f"suite={suite[0]}", *settings])
    cells = compatible_cells(sweep)
    if attack_overrides_given(settings):  # the first cell of each (task, attack) pair, composed
        first_of_each = {(cell[0], cell[1]): cell for cell in reversed(cells)}.values()
        refuse_overwritten(
            [compose_config([f"suite={suite[0]}", *cell, *settings]) for cell in first_of_each],
            settings,
        )
    tasks = sweep["task"]
    total = len(tasks) * len(sweep["attack"]) * len(sweep["defense"]) * len(sweep["seed"])
    print(
        f"invbench bench: suite {suite[0]}: {len(tasks)} tasks x {len(sweep['attack'])} "
        f"attacks x {len(sweep['defense'])} defenses x {len(sweep['seed'])} seeds: "
        f"{len(cells)} cells to run, {total - len(cells)} not applicable (n/a, not launched)",
        flush=True,
    )
    if not cells:
        print("invbench bench: no compatible cell to run", flush=True)
    else:
        task_entries = [swept()["task"].get(name) for name in tasks]
        check_metric_weights(cfg, {entry.modalities[0] for entry in task_entries})
        launch(cfg, suite[0], cells, [*rest, *parallel_overrides(cfg, rest)])
    return command_report(["--results", str(cfg.paths.results), "--site", str(cfg.paths.site)])


def attack_overrides_given(settings: list[str]) -> bool:
    from benchmark.runner import attack_overrides

    return bool(attack_overrides(settings))


def launch(cfg: DictConfig, suite: str, cells: list[list[str]], rest: list[str]) -> None:
    """Run the cells as one Hydra multirun. With ``progress`` on, the cells report to this
    process through an events folder and print nothing; it shows one progress line and a line
    per failed cell (benchmark/progress.py). Hydra's own log (a line per job, with all of its
    overrides) is kept to its warnings either way."""
    from benchmark.runner import resolve_paths

    hydra_overrides = [o for o in rest if o.startswith("hydra")]
    hydra_overrides.append("hydra.hydra_logging.root.level=WARNING")
    cell_settings = [o for o in rest if not o.startswith("hydra")]
    shown = bool(cfg.get("progress", True))
    events = (
        resolve_paths(cfg)["results"]
        / ".sweeps"
        / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    )
    if shown:  # the cells' own bars would overwrite the line: off in the cells
        cell_settings = [o for o in cell_settings if not o.startswith("progress=")]
        cell_settings += ["progress=false", f"++{EVENTS_KEY}={quoted(events)}"]
    cells_overrides = [[f"suite={suite}", *cell, *cell_settings, WEIGHTS_CHECKED] for cell in cells]
    watching = SweepProgress(len(cells), events) if shown else contextlib.nullcontext()
    try:
        with launching_exactly(cells_overrides), watching:
            # Hydra composes its base config with the first cell's overrides
            run_hydra(["--multirun", *cells_overrides[0], *hydra_overrides])
    finally:
        shutil.rmtree(events, ignore_errors=True)
        with contextlib.suppress(OSError):
            events.parent.rmdir()  # when no other sweep is writing to it


def parallel_overrides(cfg: DictConfig, rest: list[str]) -> list[str]:
    """Hydra overrides that run the sweep on ``jobs`` joblib workers (none when jobs is 1 or
    the user chose a launcher; a cluster launcher, ``launcher=slurm``, gets the paths)."""
    from benchmark.runner import resolve_paths

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
    from benchmark.listing import format_listing, listing_rows

    print(format_listing(listing_rows()))
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
    from benchmark.registry import UnknownNameError
    from benchmark.runner import is_offline

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

    registries = swept()
    since = next((a.partition("=")[2] for a in argv if a.startswith("--changed-since=")), None)
    chosen, rest = split_overrides([a for a in argv if not a.startswith("--")])
    methods = [(kind, name) for kind in ("attack", "defense") for name in chosen.get(kind, [])]
    if "--all" in argv:
        methods = [("attack", n) for n in registries["attack"].names()] + [
            ("defense", n) for n in registries["defense"].names()
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
        registries[kind].get(name)  # an unknown name exits 2 with the closest match
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


RUN_USAGE = """\
usage: invbench run [OVERRIDES] [--cfg job|hydra|all [--resolve]]

Runs one cell (task x attack x defense x seed), writes its record under paths.results and
prints it. An ok record of the same config is reused (rerun=true runs it again).
--cfg job prints the cell's composed config (--cfg all: with Hydra's) and runs nothing."""

BENCH_USAGE = """\
usage: invbench bench [OVERRIDES]

Runs every compatible cell of a suite (tasks x attacks x defenses x seeds; the suite's lists
unless the overrides choose), skipping cells whose ok record is current, then writes the
leaderboard. A progress line shows the cells done, failed, the time elapsed and left;
progress=false prints one line per cell instead."""

OVERRIDES_USAGE = """\
Overrides (Hydra's syntax, https://hydra.cc/docs/advanced/override_grammar/basic/):
  GROUP=CHOICE        choose an option of a config group:  task=digits attack=gmi
  KEY=VALUE           change a setting:  seed=1 rerun=true jobs=2
  KEY.SUB=VALUE       a setting of the chosen option:  attack.lr=0.05 task.target.epochs=5
  +KEY=VALUE          add a key the config lacks (++KEY=VALUE: add or change, ~KEY: delete)
  'KEY=a value'       quote values with spaces, brackets or '=' (for the shell and Hydra)"""

SWEEP_SYNTAX = """\
  GROUP=A,B           (bench) sweep several choices, also 'GROUP=[A,B]' or seed=0,1,2"""

RUN_EXAMPLES = """\
Examples:
  invbench run task=digits attack=gmi defense=none seed=0
  invbench run task=sbm-citation attack=link-steal-0 defense=output-noise defense.scale=0.3
  invbench run task=digits attack=kedmi --cfg job"""

BENCH_EXAMPLES = """\
Examples:
  invbench bench                                   the mini suite, every compatible cell
  invbench bench attack=gmi,kedmi defense=none,mid jobs=4
  invbench bench suite=paper seed=0,1,2 launcher=slurm hydra.launcher.partition=gpu
  invbench bench progress=false > bench.log        one line per cell"""


def settings_usage() -> str:
    """The root config's settings with their defaults and comments (conf/config.yaml)."""
    settings, comment, section = [], "", ""
    for raw in (CONF_DIR / "config.yaml").read_text().splitlines():
        text = raw.strip()
        if text.startswith("#"):
            comment = comment or text.lstrip("# ")
            continue
        match = re.fullmatch(r"(\s*)([a-z_]+):\s*([^#]*?)\s*(?:#\s*(.*))?", raw)
        if not match or (match.group(1) and section != "paths"):
            comment = ""
            continue
        indent, key, value, inline = match.groups()
        section = key if not indent else section
        note = (inline or comment).split(". ")[0].rstrip(".")
        comment = ""
        if not value or note.startswith("set by"):
            continue
        env = re.fullmatch(r"\$\{oc\.env:(\w+),(.*)\}", value)
        shown = f"{env.group(2)} (or ${env.group(1)})" if env else value
        name = f"paths.{key}" if indent else key
        settings.append((f"{name}={shown}", note))
    width = max(len(setting) for setting, _ in settings) + 2
    return "Settings (benchmark/conf/config.yaml; KEY=VALUE):\n" + "\n".join(
        f"  {setting:<{width}}{note}".rstrip() for setting, note in settings
    )


def groups_usage(command: str) -> str:
    groups = ["task", "attack", "defense", "suite"] + (["launcher"] if command == "bench" else [])
    lines = ["Config groups and their choices (benchmark/conf/GROUP/CHOICE.yaml):"]
    for group in groups:
        lines += textwrap.wrap(
            ", ".join(group_choices(group)),
            width=98,
            initial_indent=f"  {group:<10}",
            subsequent_indent=" " * 12,
            break_on_hyphens=False,
        )
    return "\n".join(lines)


def usage(command: str) -> str:
    """``invbench run --help`` / ``invbench bench --help``: read from the config tree, with no
    plugin imported."""
    head, examples = (
        (RUN_USAGE, RUN_EXAMPLES) if command == "run" else (BENCH_USAGE, BENCH_EXAMPLES)
    )
    overrides = OVERRIDES_USAGE + ("\n" + SWEEP_SYNTAX if command == "bench" else "")
    return "\n\n".join([head, overrides, groups_usage(command), settings_usage(), examples])


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
    if argv[0] in ("run", "bench") and {"-h", "--help"} & set(argv[1:]):
        print(usage(argv[0]))
        return 0
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_libraries()
    if argv[0] == "list":  # from the registries' index: no plugin imported
        return command_list(argv[1:])
    from hydra.errors import HydraException

    from benchmark.registry import UnknownNameError, load_all

    try:
        if not prints_config_only(argv):
            load_all()
        return COMMANDS[argv[0]](argv[1:])
    except (InvbenchError, UnknownNameError, HydraException) as error:
        # HydraException: an override that does not compose (a misspelt key, a bad value)
        print(f"invbench: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
