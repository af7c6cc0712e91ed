"""The interfaces every task, attack and defense implements.

The runner (``benchmark/runner.py``) drives one cell through them::

    task.use_defense(defense)           once per cell, before the target is built or loaded
    task.train_target(model)            under task.defense; cached per (task, train-time
                                        defense, seed)
    task.train_evaluator(model)         cached per (task, seed); never shown to attacks
    attack.build_prior(task.attacker_view())        shapes only, never the private splits
    attack.train_prior(prior, task.public_data())   cached per (task, attack, seed)
    victims = task.victims(budget, release)         what the attacker is asked to invert
    recon = attack.run(access, victims, prior, budget)
    metrics = task.score(recon, victims, evaluator)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf

from benchmark.context import RunContext


@dataclass(frozen=True)
class Unavailable:
    """A metric that could not be computed (e.g. its weights are absent offline), with the
    reason; the record shows the value as null with this reason, never as a number."""

    reason: str


def plain(cfg: Any) -> dict:
    """A YAML node as a plain dict (OmegaConf resolved), or ``{}``."""
    if cfg is None:
        return {}
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]
    return dict(cfg)


class Defense:
    """Base defense: plain cross-entropy training, outputs released unchanged.

    Every hook a task calls is a method here with the undefended behaviour, so a defense
    overrides only what it changes and a task never asks whether a hook exists:

    - :meth:`training_loss` / :meth:`training_step`: the loss of one minibatch;
    - :meth:`start_epoch`: told each epoch of a minibatch loop (a schedule, negls);
    - :meth:`adapt_target`: the architecture it trains (MID's bottleneck, DP-SGD's group norm);
    - :meth:`fit_image_target`: an image target's whole training (transfer learning, DP-SGD);
    - :meth:`perturb_edges`: the graph a graph target trains and runs on (edge-level DP);
    - :meth:`graph_gradients`: a graph target's gradient, when it is not the loss's (DP-SGD);
    - :meth:`transform_output`: what the released model outputs (output-processing defenses).

    ``kind`` is declared once, here on the class; the registry reads it.
    """

    kind = "none"
    modality = ""  # the modality of the cell's task; the runner sets it before the task uses it
    # True when the training this defense changes creates its tensors on the device of the
    # model and data it is given (benchmark/devices.py); otherwise its cells run on the CPU.
    runs_on_gpu = False

    def __init__(self, cfg: Any = None):
        self.cfg = plain(cfg)

    def training_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels)

    def training_step(
        self, model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        """The loss of one minibatch; defenses with terms beyond the logits (MID's KL, BiDO's
        HSIC) override it."""
        return self.training_loss(model(inputs), labels)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called at the start of each epoch of a minibatch training loop."""

    def adapt_target(self, model: torch.nn.Module) -> torch.nn.Module:
        """The target architecture this defense trains (MID adds a bottleneck head, DP-SGD
        replaces batch norm); called on the untrained model before training or loading."""
        return model

    def fit_image_target(
        self, model: torch.nn.Module, data: Any, settings: dict, progress: bool
    ) -> dict:
        """Train an image target on ``data`` (a ``tasks.images.TrainingData``) and return what
        the record keeps of it; by default the task's minibatch loop on the private train split
        with this defense's :meth:`training_step` and :meth:`start_epoch`."""
        data.fit_private(model, settings, self.training_step, epoch_start=self.start_epoch)
        return {}

    def perturb_edges(self, edges: Any, num_nodes: int, rng: Any) -> Any:
        """The undirected edges [E, 2] a graph target is trained AND queried on."""
        return edges

    def graph_gradients(self, model: torch.nn.Module, graph: Any, edge_index: torch.Tensor) -> Any:
        """What replaces a graph target's full-batch gradient (an object whose
        ``set_private_gradients()`` sets each parameter's ``.grad`` and whose
        ``privacy_spent(steps)`` reports the guarantee), or None for the loss's own."""
        return None

    def transform_output(self, probs: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return probs

    def target_key(self) -> dict:
        """What of this defense changes the trained target (part of the artifact key)."""
        return dict(self.cfg) if self.kind == "train" else {}


class Attack:
    """Base attack. ``build_prior`` / ``train_prior`` are optional (attacks with no prior).

    Constructed with its YAML (the suite's prior budgets written in) and the cell's
    :class:`~benchmark.context.RunContext`: ``self.device`` (where its priors and ``run``
    create tensors), ``self.amp`` (bfloat16 autocast of the latent search) and
    ``self.progress`` (show progress bars) come from it.
    """

    # True when the attack's priors and ``run`` create their tensors on ``self.device`` (the
    # runner then hands it modules, data and a random generator there; benchmark/devices.py).
    runs_on_gpu = False
    required = ("run",)  # what a registered attack must override (benchmark/registry.py)

    def __init__(self, cfg: Any = None, context: RunContext | None = None):
        self.cfg = plain(cfg)
        context = context or RunContext()
        self.device, self.amp, self.progress = context.device, context.amp, context.progress

    def build_prior(self, task: "TaskView") -> torch.nn.Module | None:
        """An untrained prior (e.g. a GAN) for a task of this shape, or None when the attack
        uses none. ``task`` is what an attacker may know of the task (:class:`TaskView`), never
        the task object and its private splits."""
        return None

    def train_prior(self, prior: torch.nn.Module, public: Any, progress: bool) -> dict:
        """Train ``prior`` on the task's PUBLIC data only; return metadata for the record."""
        return {}

    def build_target_prior(
        self, task: "TaskView", target: torch.nn.Module
    ) -> dict[str, torch.nn.Module]:
        """White-box attacks only: untrained artifacts derived from public data AND the target
        (KEDMI's GAN, PLG-MI's conditional GAN, LOMMA's students), keyed by the YAML block that
        configures each. The runner trains each once per (class, block settings, trained
        target) and passes the dict to ``run`` as ``target_prior``."""
        return {}

    def train_target_prior(
        self,
        model: torch.nn.Module,
        public: Any,
        target: torch.nn.Module,
        teacher: Any,
        progress: bool,
    ) -> dict:
        """Train one artifact of ``build_target_prior`` on PUBLIC data, reading the target
        through ``teacher`` (queries -> probabilities) or ``target`` (white-box)."""
        return {}

    def run(
        self,
        access: Any,
        victims: Any,
        prior: Any,
        budget: dict,
        generator: torch.Generator,
        **artifacts: Any,
    ):
        raise TypeError(f"{type(self).__name__} must implement run()")

    def details(self) -> dict:
        """What ``run`` chose that a reader of the record should see (the extraction string
        sent, say); the record's ``attack_details``, omitted when empty."""
        return {}


@dataclass(frozen=True)
class TaskView:
    """What an attack knows of the task when it builds its priors: the modality and the shapes
    of what it reconstructs. No data (priors train on ``Task.public_data()``), no target."""

    modality: str
    image_shape: tuple[int, int, int] | None = None  # image tasks: [C, H, W]
    num_classes: int | None = None  # the private identities (classes) a target tells apart


class Task:
    """Base task. Subclasses set ``modality``, ``primary_metric`` and the methods below."""

    modality = ""
    primary_metric = ""
    # True when the target's and evaluator's training, scoring and utility work on the device
    # of the module they are given (benchmark/devices.py); otherwise the task's cells run on CPU.
    runs_on_gpu = False
    # Names of the registered metrics ``score`` returns (each carries its own direction).
    metrics: tuple[str, ...] = ()
    # Names of the utility figures ``utility`` returns, mapped to higher_is_better.
    utility_metrics: dict[str, bool] = {"test_accuracy": True}
    # What a registered task must override (benchmark/registry.py checks at registration).
    required = (
        "build_target",
        "train_target",
        "probs_fn",
        "public_data",
        "victims",
        "check_reconstruction",
        "score",
        "utility",
    )

    def __init__(self, cfg: Any, data_root: Path, cache_dir: Path, seed: int, offline: bool):
        self.cfg = plain(cfg)
        self.data_root = Path(data_root)
        self.cache_dir = Path(cache_dir)
        self.seed = seed
        self.offline = offline

    def attacker_view(self) -> TaskView:
        """What ``Attack.build_prior`` / ``build_target_prior`` are told of this task."""
        return TaskView(self.modality)

    def artifact_key(self) -> dict:
        """What, beyond the task's YAML, changes its trained models (e.g. whether pretrained
        weights were found): part of every cached artifact's key."""
        return {}

    # Data --------------------------------------------------------------------------------
    def data_problems(self) -> list[str]:
        """What is wrong with a real-data task's files, one line each (a missing file, a file
        whose sha256 differs from the published one); empty when the data is usable."""
        return []

    defense: Defense = Defense()  # the cell's defense, from use_defense; the undefended one

    def use_defense(self, defense: Defense) -> None:
        """The one way a task is told the cell's defense, once, before the target is built or
        loaded: ``train_target`` trains under ``self.defense``, and a task whose released model
        depends on the defense beyond training (a graph perturbed for edge-level DP) reads it
        here too."""
        self.defense = defense

    # Models ------------------------------------------------------------------------------
    def build_target(self) -> torch.nn.Module:
        raise TypeError(f"{type(self).__name__} must implement build_target()")

    def train_target(self, model: torch.nn.Module, progress: bool) -> dict:
        """Train the target under ``self.defense``; return what the record keeps of it."""
        raise TypeError(f"{type(self).__name__} must implement train_target()")

    def build_evaluator(self) -> torch.nn.Module | None:
        return None

    def train_evaluator(self, model: torch.nn.Module, progress: bool) -> dict:
        return {}

    # Attack interface --------------------------------------------------------------------
    def probs_fn(self, target: torch.nn.Module) -> Callable[[Any], torch.Tensor]:
        """The target as a differentiable function from queries to class probabilities."""
        raise TypeError(f"{type(self).__name__} must implement probs_fn()")

    def representations_fn(self, target: torch.nn.Module) -> Callable[[Any], torch.Tensor] | None:
        """White-box only: the target's internal representations of queries (e.g. node
        embeddings on the private graph), or None when the task defines none."""
        return None

    def public_data(self) -> Any:
        """What attack priors may train on: the public split only, never private data."""
        raise TypeError(f"{type(self).__name__} must implement public_data()")

    def label_release(
        self,
        target: torch.nn.Module,
        release: Callable[[Any], torch.Tensor],
        generator: torch.Generator,
    ) -> Callable[[Any], Any] | None:
        """What ``label`` access releases, built on ``release`` (queries -> the defended
        distributions): None releases the argmax of each; a language model returns the text it
        generates from them (tasks/text.py)."""
        return None

    def victims(self, budget: dict, release: Callable[[Any], torch.Tensor]) -> Any:
        raise TypeError(f"{type(self).__name__} must implement victims()")

    def check_reconstruction(self, recon: Any, victims: Any) -> None:
        raise TypeError(f"{type(self).__name__} must implement check_reconstruction()")

    def score(self, recon: Any, victims: Any, evaluator: torch.nn.Module | None) -> dict:
        raise TypeError(f"{type(self).__name__} must implement score()")

    def examples(self, recon: Any, victims: Any) -> dict | None:
        """What the leaderboard shows of the reconstructions (``benchmark.examples``): a few
        images beside private ones, prompts beside the true ones, an ROC curve; None: nothing."""
        return None

    def utility(
        self, target: torch.nn.Module, transform: Callable[[torch.Tensor], torch.Tensor]
    ) -> dict:
        """Utility of the released model; ``transform`` is the defense's output processing."""
        raise TypeError(f"{type(self).__name__} must implement utility()")
