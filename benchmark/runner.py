"""One cell of the benchmark: (task, attack, defense, seed) -> a result record.

The flow follows DESIGN.md: task -> cached target -> cached evaluator -> access wrapper ->
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
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from benchmark import __version__
from benchmark.access import NoAccess, Oracle, WhiteBoxAccess, reduce_to_access, released
from benchmark.cache import ArtifactCache, config_hash
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
from benchmark.provenance import environment, git_state
from benchmark.registry import ATTACKS, DEFENSES, TASKS, incompatibility, load_all
from benchmark.results import SCHEMA_VERSION, read_record, record_path, write_record
from benchmark.seeding import derive_seed, seed_everything

log = logging.getLogger("invbench")


FOLDERS = ("data", "results", "cache", "site")  # the paths.* keys that name folders
PRIOR_BUDGETS = {"prior_steps": "steps", "prior_batch_size": "batch_size"}  # suite -> prior block
PAPER_KEY = "paper"  # a method YAML's block of the numbers its paper reports (not a setting)


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
        value = float(value)
        out[name] = {
            "value": value if math.isfinite(value) else None,
            "higher_is_better": higher_is_better.get(name, True),
        }
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
    paper's reported numbers (``paper:``), which the record keeps apart for the leaderboard."""
    return {k: v for k, v in plain(cfg).items() if k != PAPER_KEY}


def cell_device(worker_device: torch.device, *entries) -> tuple[torch.device, str | None]:
    """The cell's device: the worker's, when every method of the cell runs on a GPU; else the
    CPU and the reason (the record's ``compute.cpu_because``)."""
    if worker_device.type == "cpu":
        return worker_device, None
    cpu_only = [entry.name for entry in entries if not entry.obj.runs_on_gpu]
    if cpu_only:
        return torch.device("cpu"), f"{', '.join(cpu_only)} run(s) on the CPU only"
    return worker_device, None


def run_cell(cfg: DictConfig, job_num: int = 0) -> dict | None:
    """Run one cell and return its record (None when the cell is not applicable). ``job_num``
    is the cell's job number in a sweep: it picks the worker's GPU (benchmark/devices.py)."""
    load_all()
    task_entry = TASKS.get(cfg.task.name)
    attack_entry = ATTACKS.get(cfg.attack.name)
    defense_entry = DEFENSES.get(cfg.defense.name)
    seed, suite = int(cfg.seed), str(cfg.suite.name)
    label = f"{suite}/{task_entry.name} {attack_entry.name} x {defense_entry.name} s{seed}"

    reason = incompatibility(task_entry, attack_entry, defense_entry)
    if reason:
        print(f"[n/a] {label}: {reason}", flush=True)
        return None

    paths = resolve_paths(cfg)
    budget = suite_budget(cfg)
    device, cpu_because = cell_device(
        resolve_device(cfg.get("device", "auto"), job_num), task_entry, attack_entry, defense_entry
    )
    amp = resolve_amp(cfg.get("amp", "auto"), device)
    cell_config = {
        "task": plain(cfg.task),
        "attack": method_settings(cfg.attack),
        "defense": method_settings(cfg.defense),
        "budget": budget,
        "seed": seed,
        "versions": {
            "harness": __version__,
            "task": task_entry.version,
            "attack": attack_entry.version,
            "defense": defense_entry.version,
        },
    }
    cell_hash = config_hash(cell_config)
    path = record_path(
        paths["results"], suite, task_entry.name, attack_entry.name, defense_entry.name, seed
    )
    existing = read_record(path) if path.exists() else None
    if (
        existing
        and existing.get("status") == "ok"
        and existing.get("config_hash") == cell_hash
        and not cfg.get("rerun", False)
    ):
        print(f"[cached] {label}: {path} (rerun=true runs it again)", flush=True)
        if cfg.get("show_record", False):
            print(json.dumps(existing, indent=2, sort_keys=True, default=str), flush=True)
        return existing

    task = build_task(cfg)
    progress = bool(cfg.get("progress", True))
    cache = ArtifactCache(paths["cache"])
    record = {
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
        "budget": budget,
        "citations": {
            kind: entry.citation.__dict__ if entry.citation else None
            for kind, entry in (
                ("task", task_entry),
                ("attack", attack_entry),
                ("defense", defense_entry),
            )
        },
        "versions": cell_config["versions"],
        "config_hash": cell_hash,
        "config": cell_config,
        "paper": {
            "attack": plain(cfg.attack).get(PAPER_KEY),
            "defense": plain(cfg.defense).get(PAPER_KEY),
        },
        "git": git_state(),
        "environment": environment(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "metrics": {},
        "utility": {},
        "provenance": {},
        "error": None,
        # where it ran: not part of the config hash (a result does not go stale when the same
        # cell moves to another machine), but a reader comparing numbers should see it
        "compute": {
            "device": str(device),
            "amp": amp,
            "requested": str(cfg.get("device", "auto")),
            "cpu_because": cpu_because,
        },
    }
    timings = {"train_seconds": 0.0, "attack_seconds": 0.0, "cache_hits": 0, "cache_misses": 0}

    def seeded_build(kind: str, build):
        # A module's random initialisation must not depend on what ran before it in this
        # process (an earlier cell, a resumed sweep), so seed right before building it.
        seed_everything(derive_seed(seed, kind, "init"))
        return build()

    def cached(
        kind: str, key: dict, untrained: torch.nn.Module, train
    ) -> tuple[torch.nn.Module, dict]:
        # built (and seeded) on the CPU, so initial weights do not depend on the device
        module, meta, hit = cache.get_or_train(kind, key, lambda: untrained.to(device), train)
        timings["cache_hits" if hit else "cache_misses"] += 1
        if not hit:
            timings["train_seconds"] += meta.get("train_seconds", 0.0)
        return module, meta

    access, queries = None, 0
    # a GPU is held for the whole cell, so two workers never share one (benchmark/devices.py)
    with (
        exclusive_gpu(device, explicit=names_gpu_index(cfg.get("device", "auto"))) as device,
        PeakMemory(device=device) as cost,
    ):
        record["compute"]["device"] = str(device)
        if device.type == "cuda":
            record["compute"]["device_name"] = torch.cuda.get_device_name(device)
        try:
            defense = defense_entry.obj(cfg.defense)
            defense.modality = task.modality
            task.use_defense(defense)
            attack = attack_entry.obj(cfg.attack)
            attack.progress, attack.device, attack.amp = progress, device, amp
            task_key = {
                "task": plain(cfg.task),
                "version": task_entry.version,
                "seed": seed,
                **task.artifact_key(),
            }

            def train_target(model: torch.nn.Module) -> dict:
                seed_everything(derive_seed(seed, "target"))
                return task.train_target(model, defense, progress)

            target_key = {
                **task_key,
                "defense": defense.target_key(),
                "defense_version": defense_entry.version if defense.kind == "train" else None,
            }
            target, target_meta = cached(
                "target",
                target_key,
                seeded_build("target", lambda: defense.adapt_target(task.build_target())),
                train_target,
            )
            record["provenance"]["target"] = {k: v for k, v in target_meta.items() if k != "config"}

            evaluator = seeded_build("evaluator", task.build_evaluator)
            if evaluator is not None:

                def train_evaluator(model: torch.nn.Module) -> dict:
                    seed_everything(derive_seed(seed, "evaluator"))
                    return task.train_evaluator(model, progress)

                evaluator, evaluator_meta = cached(
                    "evaluator", task_key, evaluator, train_evaluator
                )
                record["provenance"]["evaluator"] = {
                    k: v for k, v in evaluator_meta.items() if k != "config"
                }

            # The suite fixes every attack prior's training length and minibatch alike.
            for budget_key, setting in PRIOR_BUDGETS.items():
                if budget_key in budget:
                    for block in ("prior", "target_prior"):
                        if isinstance(attack.cfg.get(block), dict):
                            attack.cfg[block][setting] = int(budget[budget_key])

            def prior_key(block: str, module: torch.nn.Module) -> dict:
                # Keyed by the prior's class and settings, not by the attack: attacks with the
                # same prior block share one trained prior, and attack-time knobs reuse it.
                kind = type(module)
                return {
                    **task_key,
                    block: attack.cfg.get(block),
                    "class": f"{kind.__module__}.{kind.__qualname__}",
                    "version": getattr(kind, "version", "1"),
                }

            prior = seeded_build("prior", lambda: attack.build_prior(task))
            if prior is not None:

                def train_prior(model: torch.nn.Module) -> dict:
                    seed_everything(derive_seed(seed, "prior"))
                    return attack.train_prior(model, task.public_data(), progress)

                prior, prior_meta = cached("prior", prior_key("prior", prior), prior, train_prior)
                record["provenance"]["prior"] = {
                    k: v for k, v in prior_meta.items() if k != "config"
                }

            # Artifacts an attack derives from public data AND the target (KEDMI's and PLG-MI's
            # GANs, LOMMA's distilled students): white-box only, cached per trained target.
            extra = {}
            if attack_entry.access == "whitebox":
                built = seeded_build(
                    "target_prior", lambda: attack.build_target_prior(task, target)
                )
                teacher = task.probs_fn(target)
                artifacts = {}
                for block, module in built.items():

                    def train_target_prior(model: torch.nn.Module) -> dict:
                        seed_everything(derive_seed(seed, "target_prior", block))
                        return attack.train_target_prior(
                            model, task.public_data(), target, teacher, progress
                        )

                    # keyed by class, settings block and trained target: kedmi and lomma-kedmi
                    # share one KEDMI GAN, the lomma-* attacks one set of students
                    artifacts[block], meta = cached(
                        "target_prior",
                        {**prior_key(block, module), "target": target_key},
                        module,
                        train_target_prior,
                    )
                    record["provenance"][f"target_prior.{block}"] = {
                        k: v for k, v in meta.items() if k != "config"
                    }
                if artifacts:
                    extra["target_prior"] = artifacts

            target.eval()
            release_generator = torch.Generator().manual_seed(derive_seed(seed, "release"))
            release = released(task.probs_fn(target), defense.transform_output, release_generator)
            # What the attacker observes of the victims (a text task's released distributions
            # after the secret prompts) is reduced to its access level, like its queries.
            topk = int(budget.get("topk", 5))
            text_release = (
                task.label_release(
                    target, release, torch.Generator().manual_seed(derive_seed(seed, "generation"))
                )
                if attack_entry.access == "label"
                else None
            )
            victims = task.victims(
                budget,
                text_release
                or (lambda queries: reduce_to_access(release(queries), attack_entry.access, topk)),
            )
            if hasattr(victims, "knowledge"):
                record["attacker_knowledge"] = victims.knowledge()
            if attack_entry.access == "whitebox":
                access = WhiteBoxAccess(
                    target, task.probs_fn(target), task.representations_fn(target)
                )
            elif attack_entry.access == "none":
                access = NoAccess()
            else:
                access = Oracle(
                    text_release or release, attack_entry.access, budget.get("queries"), topk=topk
                )
            attack_seed = derive_seed(seed, "attack")
            generator = seed_everything(attack_seed)
            if device.type != "cpu":
                generator = device_generator(attack_seed, device)
            attack_started = time.perf_counter()
            recon = attack.run(access, victims, prior, budget, generator, **extra)
            if isinstance(recon, torch.Tensor):
                recon = recon.detach().cpu()  # waits for the device: the attack's time is real
            timings["attack_seconds"] = time.perf_counter() - attack_started
            details = attack.details()
            if details:
                record["attack_details"] = details
            queries = access.queries  # scoring and utility below are not the attacker's
            if isinstance(access, WhiteBoxAccess):
                access.close()
            task.check_reconstruction(recon, victims)
            record["metrics"] = _metric_values(task.score(recon, victims, evaluator), task.metrics)
            record["examples"] = task.examples(recon, victims)
            record["reconstruction_sha256"] = reconstruction_digest(recon)
            utility_generator = torch.Generator().manual_seed(derive_seed(seed, "utility"))
            record["utility"] = _metric_values(
                task.utility(target, lambda p: defense.transform_output(p, utility_generator)),
                task.utility_metrics,
            )
            record["status"] = "ok"
        except Exception as error:  # a method failure is a result, not a crash of the sweep
            record["status"] = "failed"
            record["error"] = f"{type(error).__name__}: {error}"
            record["traceback"] = traceback.format_exc(limit=8)
            if access is not None and not queries:
                queries = access.queries  # what the attack spent before it failed
        finally:
            if isinstance(access, WhiteBoxAccess):
                access.close()

    record["cost"] = {
        "seconds": round(cost.seconds, 3),
        "train_seconds": round(timings["train_seconds"], 3),
        "attack_seconds": round(timings["attack_seconds"], 3),
        "peak_rss_mb": cost.peak_mb,
        "queries": queries,
        "cache_hits": timings["cache_hits"],
        "cache_misses": timings["cache_misses"],
    }
    if cost.peak_gpu_mb is not None:
        record["cost"]["peak_gpu_mb"] = cost.peak_gpu_mb
    record["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    write_record(path, record)
    print(summary_line(label, record), flush=True)
    if cfg.get("show_record", False):
        print(json.dumps(record, indent=2, sort_keys=True, default=str), flush=True)
    return record


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
