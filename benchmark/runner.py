"""One cell of the benchmark: (task, attack, defense, seed) -> a result record.

The flow: task -> cached target -> cached evaluator -> access wrapper ->
cached prior -> attack -> checks -> metrics + utility + cost -> atomic record. Method errors
become a ``failed`` record and never stop a sweep; errors the user must fix (missing data, an
unknown name) are raised before any record is written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark import __version__
from benchmark.access import (
    ForwardCounter,
    NoAccess,
    Oracle,
    WhiteBoxAccess,
    reduce_to_access,
    released,
    sealed_target,
)
from benchmark.cache import ArtifactCache, config_hash
from benchmark.checkpoints import resolve_checkpoint_path
from benchmark.context import Budget, RunContext
from benchmark.cost import PeakMemory
from benchmark.devices import (
    device_generator,
    exclusive_gpu,
    names_gpu_index,
    resolve_amp,
    resolve_device,
)
from benchmark.errors import InvbenchError, MissingDataError
from benchmark.methods import Unavailable, plain
from benchmark.progress import report_cell
from benchmark.provenance import environment, git_state
from benchmark.registry import ATTACKS, DEFENSES, METRICS, TASKS, incompatibility, load_all
from benchmark.results import SCHEMA_VERSION, read_record, record_path, write_record
from benchmark.seeding import derive_seed, seed_everything
from metrics.units import UnitScores

log = logging.getLogger("invbench")


FOLDERS = ("data", "results", "cache", "site")  # the paths.* keys that name folders
PRIOR_BUDGETS = {"prior_steps": "steps", "prior_batch_size": "batch_size"}  # suite -> prior block
REPORTED_KEY = "reported"  # a method YAML's list of the numbers its paper reports (not a setting)


def resolve_paths(cfg: DictConfig) -> dict[str, Path]:
    return {name: Path(str(cfg.paths[name])).expanduser().resolve() for name in FOLDERS}


def is_offline(cfg: DictConfig) -> bool:
    return str(cfg.paths.get("offline", "false")).lower() in ("1", "true", "yes")


def missing_data_message(task_name: str, data_root: Path, problems: list[str]) -> str:
    listing = "\n".join(f"  {problem}" for problem in problems)
    return (
        f"task '{task_name}' needs real data that is not usable under the data root "
        f"{data_root}.\n{listing}\n"
        f"Put them there (the layout of ../shared/data, see its README), or point the data root "
        f"at a folder that has them: INVBENCH_DATA=/path/to/data or paths.data=/path/to/data."
    )


def build_task(cfg: DictConfig):
    """Instantiate the configured task, raising MissingDataError when its files are absent."""
    load_all()
    entry = TASKS.get(cfg.task.name)
    paths = resolve_paths(cfg)
    task = entry.obj(cfg.task, paths["data"], paths["cache"], int(cfg.seed), is_offline(cfg))
    problems = task.data_problems()
    if problems:
        raise MissingDataError(missing_data_message(cfg.task.name, paths["data"], problems))
    return task


def suite_budget(cfg: DictConfig) -> dict:
    budgets = plain(cfg.suite.get("budgets"))
    if cfg.task.name not in budgets:
        raise InvbenchError(
            f"suite '{cfg.suite.name}' sets no budget for task '{cfg.task.name}'; add "
            f"budgets.{cfg.task.name} to benchmark/conf/suite/{cfg.suite.name}.yaml"
        )
    return budgets[cfg.task.name]


def _metric_values(values: dict, higher_is_better: dict[str, bool]) -> dict:
    out = {}
    for name, value in values.items():
        if isinstance(value, Unavailable):
            out[name] = {
                "value": None,
                "unavailable": value.reason,
                "higher_is_better": higher_is_better.get(name, True),
            }
            continue
        units = value.units if isinstance(value, UnitScores) else None
        value = float(value.value if isinstance(value, UnitScores) else value)
        out[name] = {
            "value": value if math.isfinite(value) else None,
            "higher_is_better": higher_is_better.get(name, True),
        }
        if units is not None and math.isfinite(value):
            out[name]["units"] = units  # what the leaderboard's bootstrap resamples
    return out


def reconstruction_digest(recon) -> str:
    """sha256 of the reconstructions' exact values: two runs agree bit for bit iff equal."""
    if isinstance(recon, (list, tuple)):
        data = json.dumps(list(recon)).encode()
    else:
        array = recon.detach().cpu().numpy() if isinstance(recon, torch.Tensor) else recon
        data = np.ascontiguousarray(array).tobytes() + str(array.shape).encode()
    return hashlib.sha256(data).hexdigest()


def method_settings(cfg: DictConfig) -> dict:
    """A method's YAML as the cell's config (and hash) holds it: every setting, without the
    paper's reported numbers (``reported:``), which the record keeps apart for the leaderboard."""
    return {k: v for k, v in plain(cfg).items() if k != REPORTED_KEY}


def reported_for(method_cfg: DictConfig, task_cfg: DictConfig) -> list[dict]:
    """The entries of a method's ``reported:`` list on this cell's protocol: the same task and,
    where the entry names one, the same target architecture."""
    target = (plain(task_cfg).get("target") or {}).get("model")
    return [
        entry
        for entry in plain(method_cfg).get(REPORTED_KEY) or []
        if entry.get("task") == task_cfg.name
        and (entry.get("target") is None or entry.get("target") == target)
    ]


def cell_device(worker_device: torch.device, *entries) -> tuple[torch.device, str | None]:
    """The cell's device: the worker's, when every method of the cell runs on a GPU; else the
    CPU and the reason (the record's ``compute.cpu_because``)."""
    if worker_device.type == "cpu":
        return worker_device, None
    cpu_only = [entry.name for entry in entries if not entry.obj.runs_on_gpu]
    if cpu_only:
        return torch.device("cpu"), f"{', '.join(cpu_only)} run(s) on the CPU only"
    return worker_device, None


@dataclass
class Artifact:
    """One cached artifact of a cell (a target, the evaluator, a prior, a target-derived prior):
    how to build it untrained, how to train it, its cache key and its seed stage. Building is
    seeded right before (``<stage>:init``) and training too (``train_stage``), so a module's
    initialisation never depends on what ran earlier in the process (another cell, a resume)."""

    kind: str  # the cache folder and the provenance entry's name
    key: dict
    train: Callable[[torch.nn.Module], dict]
    train_stage: tuple[str, ...]
    provenance: str = ""  # the record's provenance entry; the kind by default


@dataclass
class Cell:
    """What the stages of one cell share: its configuration, device and the record it fills."""

    cfg: DictConfig
    entries: tuple  # (task, attack, defense) registry entries
    seed: int
    budget: Budget
    device: torch.device
    amp: bool
    record: dict
    cache: ArtifactCache
    progress: bool
    timings: dict = field(
        default_factory=lambda: {
            "train_seconds": 0.0,
            "attack_seconds": 0.0,
            "cache_hits": 0,
            "cache_misses": 0,
        }
    )
    access: Any = None
    queries: int = 0  # the target's outputs or forwards the attack spent while it ran
    training_forwards: int | None = 0  # the target's forwards while its GANs or students trained

    def seeded(self, stage: str, build: Callable[[], Any]) -> Any:
        seed_everything(derive_seed(self.seed, stage, "init"))
        return build()

    def cached(self, artifact: Artifact, untrained: torch.nn.Module) -> torch.nn.Module:
        """The trained artifact from the cache, trained and stored on a miss; its metadata goes
        to the record's provenance. Built (and seeded) on the CPU, so initial weights do not
        depend on the device."""

        def train(model: torch.nn.Module) -> dict:
            seed_everything(derive_seed(self.seed, *artifact.train_stage))
            return artifact.train(model)

        module, meta, hit = self.cache.get_or_train(
            artifact.kind, artifact.key, lambda: untrained.to(self.device), train
        )
        self.timings["cache_hits" if hit else "cache_misses"] += 1
        if not hit:
            self.timings["train_seconds"] += meta.get("train_seconds", 0.0)
        self.record["provenance"][artifact.provenance or artifact.kind] = {
            k: v for k, v in meta.items() if k != "config"
        }
        return module


def run_cell(cfg: DictConfig, job_num: int = 0) -> dict | None:
    """Run one cell and return its record (None when the cell is not applicable). ``job_num``
    is the cell's job number in a sweep: it picks the worker's GPU (benchmark/devices.py)."""
    load_all()
    entries = (
        TASKS.get(cfg.task.name),
        ATTACKS.get(cfg.attack.name),
        DEFENSES.get(cfg.defense.name),
    )
    seed = int(cfg.seed)
    label = f"{cfg.suite.name}/{entries[0].name} {entries[1].name} x {entries[2].name} s{seed}"
    reason = incompatibility(*entries)
    if reason:
        report_cell(cfg, "n/a", label, f"[n/a] {label}: {reason}")
        return None
    device, cpu_because = cell_device(resolve_device(cfg.get("device", "auto"), job_num), *entries)
    paths = resolve_paths(cfg)
    config = cell_config(cfg, entries)
    path = record_path(
        paths["results"], str(cfg.suite.name), *(entry.name for entry in entries), seed
    )
    cell_hash = config_hash(config)
    existing = cached_record(cfg, path, cell_hash)
    if existing is not None:
        report_cell(cfg, "cached", label, f"[cached] {label}: {path} (rerun=true runs it again)")
        show_record(cfg, existing)
        return existing
    task = build_task(cfg)
    amp = resolve_amp(cfg.get("amp", "auto"), device)
    # where it runs: not part of the config hash (a result does not go stale when the same cell
    # moves to another machine), but a reader comparing numbers should see it
    compute = {
        "device": str(device),
        "amp": amp,
        "requested": str(cfg.get("device", "auto")),
        "cpu_because": cpu_because,
    }
    record = new_record(cfg, entries, task, config, cell_hash, compute)
    cell = Cell(
        cfg,
        entries,
        seed,
        Budget.from_suite(entries[0].name, config["budget"]),
        device,
        amp,
        record,
        ArtifactCache(paths["cache"]),
        bool(cfg.get("progress", True)),
    )
    run_stages(cell, task)
    write_record(path, record)
    report_cell(cfg, record["status"], label, summary_line(label, record), record["error"], path)
    show_record(cfg, record)
    return record


def cell_config(cfg: DictConfig, entries: tuple) -> dict:
    """What the cell's result depends on: its config hash is the record's ``config_hash``."""
    task_entry, attack_entry, defense_entry = entries
    return {
        "task": plain(cfg.task),
        "attack": method_settings(cfg.attack),
        "defense": method_settings(cfg.defense),
        "budget": suite_budget(cfg),
        **({"priors": priors} if (priors := suite_priors(cfg)) else {}),
        **(
            {"suite_settings": own}
            if (own := suite_method_settings(cfg, attack_entry.name))
            else {}
        ),
        "seed": int(cfg.seed),
        "versions": {
            "harness": __version__,
            "task": task_entry.version,
            "attack": attack_entry.version,
            "defense": defense_entry.version,
        },
    }


def cached_record(cfg: DictConfig, path: Path, cell_hash: str) -> dict | None:
    """The cell's finished ``ok`` record of the same config hash, unless ``rerun=true``."""
    existing = read_record(path) if path.exists() else None
    if (
        existing
        and existing.get("status") == "ok"
        and existing.get("config_hash") == cell_hash
        and not cfg.get("rerun", False)
    ):
        return existing
    return None


def show_record(cfg: DictConfig, record: dict) -> None:
    if cfg.get("show_record", False):
        print(json.dumps(record, indent=2, sort_keys=True, default=str), flush=True)


def new_record(
    cfg: DictConfig,
    entries: tuple,
    task,
    config: dict,
    cell_hash: str,
    compute: dict,
) -> dict:
    """The record before the cell runs: what it is, its provenance, where it runs."""
    task_entry, attack_entry, defense_entry = entries
    suite, seed = str(cfg.suite.name), int(cfg.seed)
    return {
        "schema_version": SCHEMA_VERSION,
        "key": f"{suite}/{task_entry.name}/{attack_entry.name}__{defense_entry.name}__s{seed}",
        "suite": suite,
        "task": task_entry.name,
        "attack": attack_entry.name,
        "defense": defense_entry.name,
        "seed": seed,
        "modality": task.modality,
        "access": attack_entry.access,
        "defense_kind": defense_entry.defense_kind,
        "primary_metric": task.primary_metric,
        "budget": config["budget"],
        "citations": {
            kind: entry.citation.__dict__ if entry.citation else None
            for kind, entry in zip(("task", "attack", "defense"), entries)
        },
        "versions": config["versions"],
        "config_hash": cell_hash,
        "config": config,
        "reported": {
            "attack": reported_for(cfg.attack, cfg.task),
            "defense": reported_for(cfg.defense, cfg.task),
        },
        "git": git_state(),
        "environment": environment(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": {},
        "utility": {},
        "provenance": {},
        "error": None,
        "compute": compute,
    }


def run_stages(cell: Cell, task) -> None:
    """task -> target -> evaluator -> priors -> access -> attack -> score, on the cell's device
    (held for the whole cell, so two workers never share a GPU). A method's failure is a
    ``failed`` record, not a crash of the sweep; the record's cost is filled either way."""
    requested = cell.cfg.get("device", "auto")
    with (
        exclusive_gpu(cell.device, explicit=names_gpu_index(requested)) as device,
        PeakMemory(device=device) as cost,
    ):
        cell.device = device
        cell.record["compute"]["device"] = str(device)
        if device.type == "cuda":
            cell.record["compute"]["device_name"] = torch.cuda.get_device_name(device)
        try:
            defense, attack, task_key = prepare_methods(cell, task)
            target, target_key = train_target(cell, task, defense, task_key)
            evaluator = train_evaluator(cell, task, task_key)
            prior = train_prior(cell, task, attack, task_key)
            extra = train_target_priors(cell, task, attack, target, target_key, task_key)
            recon, victims = attack_target(cell, task, attack, defense, target, prior, extra)
            score(cell, task, defense, target, evaluator, recon, victims)
        except Exception as error:  # a method failure is a result, not a crash of the sweep
            cell.record["status"] = "failed"
            cell.record["error"] = f"{type(error).__name__}: {error}"
            cell.record["traceback"] = traceback.format_exc(limit=8)
            if cell.access is not None and not cell.queries:
                cell.queries = cell.access.queries  # what the attack spent before it failed
        finally:
            if isinstance(cell.access, WhiteBoxAccess):
                cell.access.close()
    cell.record["cost"] = cell_cost(cell, cost)
    cell.record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")


def suite_priors(cfg: DictConfig) -> dict:
    """The suite's ``priors`` block: the GAN architecture (and its z_dim, width) every attack's
    prior uses, e.g. the paper suite's published ones; empty where the suite sets none."""
    return plain(cfg.suite.get("priors")) or {}


def suite_method_settings(cfg: DictConfig, attack: str) -> dict:
    """The suite's ``attack_settings.<attack>``: where the suite's protocol departs from the
    method YAML's mini defaults (the paper suite's published settings)."""
    return (plain(cfg.suite.get("attack_settings")) or {}).get(attack) or {}


def deep_merge(base: dict, override: dict) -> dict:
    merged = dict(base)
    for key, value in override.items():
        merged[key] = (
            deep_merge(merged[key], value)
            if isinstance(value, dict) and isinstance(merged.get(key), dict)
            else value
        )
    return merged


def attack_settings(
    attack_cfg: DictConfig,
    budget: dict,
    priors: dict | None = None,
    data_root: Path | None = None,
    overrides: dict | None = None,
) -> dict:
    """The attack's YAML with the suite's settings for it merged in (``overrides``: the suite's
    ``attack_settings.<attack>``) and the suite's prior budgets written into its prior blocks:
    the suite fixes every attack prior's training length and minibatch alike, and, in the prior
    blocks that declare an ``architecture``, the suite's ``priors`` (architecture, z_dim, width).
    Checkpoint paths relative to the data root become absolute."""
    settings = plain(attack_cfg)
    blocks = [b for b in ("prior", "target_prior") if isinstance(settings.get(b), dict)]
    for block in blocks:
        if "architecture" in settings[block]:
            settings[block].update(priors or {})
    settings = deep_merge(settings, overrides or {})  # the attack's own entry is the most specific
    for block in blocks:
        for budget_key, setting in PRIOR_BUDGETS.items():
            if budget_key in budget:
                settings[block][setting] = int(budget[budget_key])
        checkpoint = settings[block].get("checkpoint")
        if checkpoint and data_root is not None:
            for spec in checkpoint.values():
                if isinstance(spec, dict) and spec.get("path"):
                    spec["path"] = str(resolve_checkpoint_path(spec, data_root))
    return settings


def suite_overwritten(cfg: DictConfig, overrides: list[str]) -> list[str]:
    """The user's ``attack.<key>=`` overrides that the suite would overwrite in the settings the
    attack receives (:func:`attack_settings`: its ``attack_settings.<attack>``, its ``priors``
    and its prior budgets are written over the attack's YAML), each as a message naming the
    suite's key to set instead. Without this, ``suite=paper attack=gmi attack.lr=0.1`` would
    run at the suite's lr while the record's config showed 0.1."""
    asked = [path for path, _ in attack_overrides(overrides)]
    if not asked:
        return []
    name = str(cfg.attack.name)
    effective = attack_settings(
        cfg.attack, suite_budget(cfg), suite_priors(cfg), None, suite_method_settings(cfg, name)
    )
    mine, suite = plain(cfg.attack), str(cfg.suite.name)
    messages = []
    for path in asked:
        wanted, got = dotted(mine, path), dotted(effective, path)
        if wanted != got:
            key = ".".join(path)
            where = (
                f"suite.budgets.{cfg.task.name}.{budget_key}"
                if (budget_key := prior_budget_key(path)) and budget_key in suite_budget(cfg)
                else f"suite.attack_settings.{name}.{key}"
            )
            messages.append(
                f"attack.{key}={wanted!r} is overwritten by suite '{suite}' (it sets {got!r} "
                f"for {name}); set {where} instead"
            )
    return messages


def attack_overrides(overrides: list[str]) -> list[tuple[list[str], str]]:
    """The ``attack.<key>=value`` overrides (``+``/``++`` too) as (key path, value)."""
    out = []
    for override in overrides:
        key, sep, value = override.lstrip("+").partition("=")
        if sep and key.startswith("attack.") and len(key) > len("attack."):
            out.append((key.split(".")[1:], value.strip()))
    return out


def dotted(settings, path: list[str]):
    """``settings[path[0]][path[1]]...``, or None where the path does not reach."""
    for part in path:
        if not isinstance(settings, dict) or part not in settings:
            return None
        settings = settings[part]
    return settings


def prior_budget_key(path: list[str]) -> str | None:
    """The suite budget that fixes a prior block's setting (``prior.steps`` -> prior_steps)."""
    if len(path) == 2 and path[0] in ("prior", "target_prior"):
        return next((b for b, setting in PRIOR_BUDGETS.items() if setting == path[1]), None)
    return None


def prepare_methods(cell: Cell, task) -> tuple:
    """The cell's defense and attack, and the key every artifact of this task shares."""
    task_entry, attack_entry, defense_entry = cell.entries
    defense = defense_entry.obj(cell.cfg.defense)
    defense.modality = task.modality
    task.use_defense(defense)
    context = RunContext(device=cell.device, amp=cell.amp, progress=cell.progress)
    settings = attack_settings(
        cell.cfg.attack,
        cell.budget,
        suite_priors(cell.cfg),
        resolve_paths(cell.cfg)["data"],
        suite_method_settings(cell.cfg, attack_entry.name),
    )
    attack = attack_entry.obj(settings, context)
    task_key = {
        "task": plain(cell.cfg.task),
        "version": task_entry.version,
        "seed": cell.seed,
        **task.artifact_key(),
    }
    return defense, attack, task_key


def train_target(cell: Cell, task, defense, task_key: dict) -> tuple[torch.nn.Module, dict]:
    """One target per (task, training-time defense, seed), never one per attack."""
    defense_entry = cell.entries[2]
    target_key = {
        **task_key,
        "defense": defense.target_key(),
        "defense_version": defense_entry.version if defense.kind == "train" else None,
    }
    artifact = Artifact(
        "target",
        target_key,
        lambda model: task.train_target(model, cell.progress),
        ("target",),
    )
    untrained = cell.seeded("target", lambda: defense.adapt_target(task.build_target()))
    return cell.cached(artifact, untrained), target_key


def train_evaluator(cell: Cell, task, task_key: dict) -> torch.nn.Module | None:
    """The independent evaluation model (one per task and seed), never shown to attacks."""
    untrained = cell.seeded("evaluator", task.build_evaluator)
    if untrained is None:
        return None
    artifact = Artifact(
        "evaluator",
        task_key,
        lambda model: task.train_evaluator(model, cell.progress),
        ("evaluator",),
    )
    return cell.cached(artifact, untrained)


def prior_key(attack, task_key: dict, block: str, module: torch.nn.Module) -> dict:
    """Keyed by the prior's class and settings, not by the attack: attacks with the same prior
    block share one trained prior, and attack-time knobs reuse it."""
    kind = type(module)
    return {
        **task_key,
        block: attack.cfg.get(block),
        "class": f"{kind.__module__}.{kind.__qualname__}",
        "version": getattr(kind, "version", "1"),
    }


def train_prior(cell: Cell, task, attack, task_key: dict) -> torch.nn.Module | None:
    """The attack's prior trained on the task's PUBLIC data (a GAN), when it has one."""
    untrained = cell.seeded("prior", lambda: attack.build_prior(task.attacker_view()))
    if untrained is None:
        return None
    artifact = Artifact(
        "prior",
        prior_key(attack, task_key, "prior", untrained),
        lambda model: attack.train_prior(model, task.public_data(), cell.progress),
        ("prior",),
    )
    return cell.cached(artifact, untrained)


def train_target_priors(cell: Cell, task, attack, target, target_key: dict, task_key: dict) -> dict:
    """Artifacts an attack derives from public data AND the target (KEDMI's and PLG-MI's GANs,
    LOMMA's students): white-box only, keyed by class, settings block and trained target, so
    kedmi and lomma-kedmi share one KEDMI GAN and the lomma-* attacks one set of students."""
    if cell.entries[1].access != "whitebox":
        return {}
    built = cell.seeded(
        "target_prior", lambda: attack.build_target_prior(task.attacker_view(), target)
    )
    teacher = task.probs_fn(target)

    def train(model: torch.nn.Module) -> dict:
        counter = ForwardCounter(target, cell.budget.forwards, cell.training_forwards or 0)
        try:
            meta = attack.train_target_prior(
                model, task.public_data(), target, teacher, cell.progress
            )
        finally:
            counter.close()
        return {**(meta or {}), "target_forwards": counter.rows}

    artifacts = {}
    for block, module in built.items():
        artifact = Artifact(
            "target_prior",
            {**prior_key(attack, task_key, block, module), "target": target_key},
            train,
            ("target_prior", block),
            provenance=f"target_prior.{block}",
        )
        artifacts[block] = cell.cached(artifact, module)
        counted = cell.record["provenance"][artifact.provenance].get("target_forwards")
        # an artifact cached before forwards were counted: unknown, not zero
        cell.training_forwards = (
            None
            if counted is None or cell.training_forwards is None
            else cell.training_forwards + int(counted)
        )
    return {"target_prior": artifacts} if artifacts else {}


def open_access(cell: Cell, task, target, release, text_release):
    """What the attack is handed of the target at its declared access level."""
    access_level = cell.entries[1].access
    if access_level == "whitebox":
        return WhiteBoxAccess(
            target,
            task.probs_fn(target),
            task.representations_fn(target),
            forwards_budget=cell.budget.forwards,
            spent=cell.training_forwards or 0,
        )
    if access_level == "none":
        return NoAccess()
    return Oracle(
        text_release or release,
        access_level,
        cell.budget.get("queries"),
        topk=int(cell.budget.get("topk", 5)),
    )


def attack_target(cell: Cell, task, attack, defense, target, prior, extra: dict) -> tuple:
    """The released model, the victims reduced to the attack's access level, and the attack's
    reconstructions (timed; its queries counted before anything else touches the target)."""
    access_level, seed = cell.entries[1].access, cell.seed
    target.eval()
    release_generator = torch.Generator().manual_seed(derive_seed(seed, "release"))
    release = released(task.probs_fn(target), defense.transform_output, release_generator)
    # What the attacker observes of the victims (a text task's released distributions after
    # the secret prompts) is reduced to its access level, like its queries.
    topk = int(cell.budget.get("topk", 5))
    text_release = (
        task.label_release(
            target, release, torch.Generator().manual_seed(derive_seed(seed, "generation"))
        )
        if access_level == "label"
        else None
    )
    victims = task.victims(
        cell.budget,
        text_release or (lambda queries: reduce_to_access(release(queries), access_level, topk)),
    )
    if hasattr(victims, "knowledge"):
        cell.record["attacker_knowledge"] = victims.knowledge()
    cell.access = open_access(cell, task, target, release, text_release)
    attack_seed = derive_seed(seed, "attack")
    generator = seed_everything(attack_seed)
    if cell.device.type != "cpu":
        generator = device_generator(attack_seed, cell.device)
    started = time.perf_counter()
    with sealed_target(target, access_level):
        recon = attack.run(cell.access, victims, prior, cell.budget, generator, **extra)
    if isinstance(recon, torch.Tensor):
        recon = recon.detach().cpu()  # waits for the device: the attack's time is real
    cell.timings["attack_seconds"] = time.perf_counter() - started
    details = attack.details()
    if details:
        cell.record["attack_details"] = details
    cell.queries = cell.access.queries  # scoring and utility below are not the attacker's
    if isinstance(cell.access, WhiteBoxAccess):
        cell.access.close()
    return recon, victims


def score(cell: Cell, task, defense, target, evaluator, recon, victims) -> None:
    """The reconstructions checked and scored by the evaluator, and the released model's
    utility under the defense's output processing."""
    record = cell.record
    task.check_reconstruction(recon, victims)
    scores = task.score(recon, victims, evaluator)
    directions = {name: METRICS.get(name).higher_is_better for name in scores}
    record["metrics"] = _metric_values(scores, directions)
    record["examples"] = task.examples(recon, victims)
    record["reconstruction_sha256"] = reconstruction_digest(recon)
    utility_generator = torch.Generator().manual_seed(derive_seed(cell.seed, "utility"))
    record["utility"] = _metric_values(
        task.utility(target, lambda p: defense.transform_output(p, utility_generator)),
        task.utility_metrics,
    )
    record["status"] = "ok"


def cell_cost(cell: Cell, cost: PeakMemory) -> dict:
    out = {
        "seconds": round(cost.seconds, 3),
        "train_seconds": round(cell.timings["train_seconds"], 3),
        "attack_seconds": round(cell.timings["attack_seconds"], 3),
        "peak_rss_mb": cost.peak_mb,
        "queries": cell.queries,
        "training_forwards": cell.training_forwards,
        "forwards": None
        if cell.training_forwards is None
        else cell.queries + cell.training_forwards,
        "cache_hits": cell.timings["cache_hits"],
        "cache_misses": cell.timings["cache_misses"],
    }
    if cost.peak_gpu_mb is not None:
        out["peak_gpu_mb"] = cost.peak_gpu_mb
    return out


def summary_line(label: str, record: dict) -> str:
    cost = record["cost"]
    tail = (
        f"({cost['seconds']:.1f} s, {cost['peak_rss_mb']:.0f} MB, "
        f"{cost['queries']} queries, pid {os.getpid()})"
    )
    if record["status"] != "ok":
        return f"[failed] {label}: {record['error']} {tail}"
    primary = record["metrics"].get(record["primary_metric"], {}).get("value")
    utility = record["utility"].get("test_accuracy", {}).get("value")
    shown = "n/a" if primary is None else f"{primary:.4g}"
    return (
        f"[ok] {label}: {record['primary_metric']}={shown} "
        f"utility={utility if utility is None else round(utility, 4)} {tail}"
    )
