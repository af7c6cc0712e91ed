"""Image tasks: identity (class) reconstruction from image classifiers.

Protocol (GMI, Zhang et al. CVPR 2020; KEDMI, Chen et al. ICCV 2021): the classes are split
into a private half (the target and the evaluation model are trained on it, split into
train/test per class) and a public half whose images, without labels, are all an attack prior
may use. The attacker reconstructs representative images of private classes; an evaluation
model of a different architecture, trained on the private train split and never shown to the
attack, judges them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.checkpoints import load_checkpoint
from benchmark.devices import module_device
from benchmark.errors import ReconstructionError
from benchmark.examples import EXAMPLE_IDENTITIES, image_pairs
from benchmark.methods import Defense, Task, TaskView
from benchmark.registry import Citation, register_task
from benchmark.seeding import derive_seed
from metrics.attack_accuracy import attack_hits
from metrics.fid import fid
from metrics.knn_distance import knn_feature_distances
from metrics.lpips_distance import nearest_lpips
from metrics.units import unit_mean
from tasks.face_models import (
    build_image_model,
    checkpoint_layout_of,
    load_pretrained,
    pretrained_source,
)
from tasks.training import accuracy, fit_classifier, predict_in_batches


@dataclass
class ImageVictims:
    """The attacked identities: reconstruct ``per_class`` images of each class in ``classes``."""

    classes: torch.Tensor  # [n] private class indices
    per_class: int
    image_shape: tuple[int, int, int]
    num_classes: int


@dataclass
class PublicImages:
    images: torch.Tensor  # [N, C, H, W] in [0, 1], no labels


@dataclass
class TrainingData:
    """What a defense's own training loop (``fit_image_target``) gets: the private train split,
    the public images with their identity labels (the defender owns the public data; transfer
    learning pre-trains on it), and the shared minibatch loop."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    public_x: torch.Tensor
    public_y: torch.Tensor
    fit: object  # fit(model, images, labels, settings, step_loss, desc, epoch_start=None)
    description: str  # the progress bar's name of the target's training

    def fit_private(
        self, model, settings: dict, step_loss, desc: str | None = None, epoch_start=None
    ) -> None:
        """The shared minibatch loop on the private train split."""
        self.fit(
            model,
            self.train_x,
            self.train_y,
            settings,
            step_loss,
            desc or self.description,
            epoch_start=epoch_start,
        )


class ImageTask(Task):
    """Shared logic of image tasks; subclasses implement ``load_images``."""

    modality = "image"
    runs_on_gpu = True  # training, scoring and utility follow the given module's device
    primary_metric = "attack_acc@1"
    metrics = (
        "attack_acc@1",
        "attack_acc@5",
        "knn_dist",
        "fid",
        "lpips",
    )

    def load_images(self) -> tuple[torch.Tensor, np.ndarray]:
        """All images [N, C, H, W] in [0, 1] and their class (identity) labels."""
        raise TypeError(f"{type(self).__name__} must implement load_images()")

    def attacker_view(self) -> TaskView:
        return TaskView(self.modality, self.image_shape, self.num_classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self._splits()["train_x"].shape[1:])  # type: ignore[return-value]

    @property
    def num_classes(self) -> int:
        return len(self.cfg["private_classes"])

    def _splits(self) -> dict:
        if not hasattr(self, "_split_cache"):
            images, labels = self.load_images()
            private = list(self.cfg["private_classes"])
            public = set(self.cfg["public_classes"])
            rng = np.random.default_rng(derive_seed(self.seed, "split"))
            train_idx, test_idx, train_y, test_y = [], [], [], []
            for new_label, cls in enumerate(private):
                members = rng.permutation(np.flatnonzero(labels == cls))
                n_test = max(1, int(round(len(members) * float(self.cfg["test_fraction"]))))
                test_idx += members[:n_test].tolist()
                train_idx += members[n_test:].tolist()
                test_y += [new_label] * n_test
                train_y += [new_label] * (len(members) - n_test)
            public_idx = np.flatnonzero(np.isin(labels, list(public)))
            public_y = np.unique(labels[public_idx], return_inverse=True)[1]
            self._split_cache = {
                "train_x": images[train_idx],
                "train_y": torch.tensor(train_y),
                "test_x": images[test_idx],
                "test_y": torch.tensor(test_y),
                "public_x": self.load_public_images(images[public_idx]),
                "public_y": torch.tensor(public_y),
            }
        return self._split_cache

    def load_public_images(self, same_distribution: torch.Tensor) -> torch.Tensor:
        """The attack prior's data: by default the public identities of the same dataset."""
        return same_distribution

    def public_data(self) -> PublicImages:
        return PublicImages(self._splits()["public_x"])

    def artifact_key(self) -> dict:
        found = {}
        for role in ("target", "evaluator"):
            settings = self.cfg[role]
            source = pretrained_source(str(settings["model"]), settings)
            found[role] = str(source) if source is not None and Path(source).exists() else None
        return {"pretrained_weights_found": found}

    def build_target(self) -> nn.Module:
        settings = self.cfg["target"]
        return build_image_model(
            str(settings["model"]), self.num_classes, self.image_shape, settings
        )

    def build_evaluator(self) -> nn.Module:
        settings = self.cfg["evaluator"]
        return build_image_model(
            str(settings["model"]), self.num_classes, self.image_shape, settings
        )

    def fit(
        self,
        model: nn.Module,
        images: torch.Tensor,
        labels: torch.Tensor,
        settings: dict,
        step_loss,
        desc: str,
        progress: bool = True,
        epoch_start=None,
    ) -> None:
        fit_classifier(
            model,
            images,
            labels,
            epochs=int(settings["epochs"]),
            lr=float(settings["lr"]),
            batch_size=int(settings["batch_size"]),
            weight_decay=float(settings.get("weight_decay", 0.0)),
            flip=bool(self.cfg.get("flip", False)),
            step_loss=step_loss,
            desc=desc,
            progress=progress,
            epoch_start=epoch_start,
        )

    def _initialise(self, model: nn.Module, settings: dict, defense: Defense) -> tuple[dict, bool]:
        """Pretrained weights or a published checkpoint; True when the checkpoint is the whole
        trained model (nothing left to train). A training-time defense trains its own target:
        the published, undefended checkpoint is not used for it."""
        checkpoint = settings.get("checkpoint")
        if not checkpoint:
            return load_pretrained(model, settings, self.offline), False
        complete = not checkpoint_layout_of(checkpoint).partial
        if complete and defense.kind == "train":
            return {
                "checkpoint_unused": f"the training-time defense {type(defense).__name__} trains "
                f"its own target; {checkpoint['layout']} is an undefended model"
            }, False
        return load_checkpoint(model, checkpoint, self.data_root), complete

    def _fit(self, model: nn.Module, role: str, defense: Defense, progress: bool) -> dict:
        split, settings = self._splits(), self.cfg[role]
        initialised, trained = self._initialise(model, settings, defense)
        meta = {"architecture": model.architecture, **initialised}
        if trained:  # a published model: loaded, evaluated, never trained here
            model.eval()
            predictions = predict_in_batches(model, split["test_x"], device=module_device(model))
            return {
                **meta,
                "trained": False,
                "test_accuracy": accuracy(predictions.cpu(), split["test_y"]),
            }
        data = TrainingData(
            split["train_x"],
            split["train_y"],
            split["public_x"],
            split["public_y"],
            lambda m, x, y, s, loss, d, epoch_start=None: self.fit(
                m, x, y, s, loss, d, progress, epoch_start
            ),
            f"{role} {self.cfg['name']}",
        )
        meta.update(defense.fit_image_target(model, data, settings, progress))
        model.eval()
        predictions = predict_in_batches(model, split["test_x"], device=module_device(model))
        meta["test_accuracy"] = accuracy(predictions.cpu(), split["test_y"])
        return meta

    def train_target(self, model: nn.Module, progress: bool) -> dict:
        return self._fit(model, "target", self.defense, progress)

    def train_evaluator(self, model: nn.Module, progress: bool) -> dict:
        return self._fit(model, "evaluator", Defense(), progress)

    def probs_fn(self, target: nn.Module):
        return lambda images: F.softmax(target(images), dim=-1)

    def victims(self, budget: dict, release) -> ImageVictims:
        """The first ``budget.identities`` private classes, as the papers attack "the first
        300 identities" (GMI, KEDMI, PLG-MI): the same identities for every seed and attack."""
        count = min(int(budget["identities"]), self.num_classes)
        classes = np.arange(count)
        return ImageVictims(
            torch.tensor(classes),
            int(budget["samples_per_identity"]),
            self.image_shape,
            self.num_classes,
        )

    def check_reconstruction(self, recon, victims: ImageVictims) -> None:
        expected = (len(victims.classes), victims.per_class, *victims.image_shape)
        if not isinstance(recon, torch.Tensor):
            raise ReconstructionError(
                f"expected a tensor of shape {expected}, got {type(recon).__name__}"
            )
        if tuple(recon.shape) != expected:
            raise ReconstructionError(
                f"expected reconstructions of shape {expected} "
                f"(identities, samples, C, H, W), got {tuple(recon.shape)}"
            )
        if not torch.isfinite(recon).all():
            raise ReconstructionError("reconstructions contain NaN or inf values")

    @torch.no_grad()
    def score(self, recon: torch.Tensor, victims: ImageVictims, evaluator: nn.Module) -> dict:
        evaluator.eval()
        images = recon.detach().float().clamp(0, 1).flatten(0, 1)
        labels = victims.classes.repeat_interleave(victims.per_class)
        device = module_device(evaluator)
        logits = predict_in_batches(evaluator, images, device=device).cpu()
        split = self._splits()
        attacked = torch.isin(split["train_y"], victims.classes)
        per_identity = (len(victims.classes), victims.per_class)
        scores = {
            "attack_acc@1": unit_mean(
                attack_hits(logits, labels, 1).view(per_identity).mean(1), "identities"
            )
        }
        if self.num_classes > 5:  # with 5 classes or fewer every reconstruction is in the top 5
            scores["attack_acc@5"] = unit_mean(
                attack_hits(logits, labels, 5).view(per_identity).mean(1), "identities"
            )
        distances = knn_feature_distances(
            predict_in_batches(evaluator.features, images, device=device).cpu(),
            labels,
            predict_in_batches(evaluator.features, split["train_x"], device=device).cpu(),
            split["train_y"],
        )
        return {
            **scores,
            "knn_dist": unit_mean(distances.view(per_identity).mean(1), "identities"),
            "fid": fid(images, split["train_x"][attacked], self.offline),
            "lpips": nearest_lpips(
                images, labels, split["train_x"], split["train_y"], self.offline
            ),
        }

    def examples(self, recon: torch.Tensor, victims: ImageVictims) -> dict:
        """The first reconstruction of the first few identities under a private training image
        of each."""
        split = self._splits()
        shown = victims.classes[:EXAMPLE_IDENTITIES]
        private = torch.stack([split["train_x"][split["train_y"] == c][0] for c in shown])
        return image_pairs(private, recon[: len(shown), 0].detach().cpu(), shown.tolist())

    @torch.no_grad()
    def utility(self, target: nn.Module, transform) -> dict:
        split = self._splits()
        probs = predict_in_batches(
            self.probs_fn(target), split["test_x"], device=module_device(target)
        )
        probs = transform(probs.cpu())
        return {"test_accuracy": accuracy(probs, split["test_y"])}


@register_task(
    "digits",
    modalities=("image",),
    version="1.0",
    citation=Citation(
        "Optical Recognition of Handwritten Digits (scikit-learn load_digits)",
        "Alpaydin and Kaynak",
        "UCI ML Repository",
        1998,
        "https://archive.ics.uci.edu/dataset/80",
    ),
)
class Digits(ImageTask):
    """scikit-learn's bundled 8x8 digits, bilinearly upsampled to 32x32 (GMI's MNIST protocol:
    classes 0-4 private, 5-9 public)."""

    def load_images(self) -> tuple[torch.Tensor, np.ndarray]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0
        size = int(self.cfg["image_size"])
        images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
        return images.clamp(0, 1), digits.target
