"""LOMMA: logit-maximisation identity loss and model augmentation (Nguyen et al., CVPR 2023,
"Re-thinking Model Inversion Attacks Against Deep Neural Networks"), as a switch on GMI, KEDMI
and PLG-MI: ``lomma-gmi``, ``lomma-kedmi``, ``lomma-plgmi`` are those attacks with the identity
term replaced, everything else (prior, budget, optimiser) unchanged.

Identity loss (Sec. 4, Eq. 7), averaged over the target M and the augmented models S_1..S_N:

    L_id(x; y) = mean_{m in {M, S_1..S_N}} ( -l^m_y(x) ) + lambda * || phi_M(x) - p_reg ||^2

with l^m_y the logit of identity y, phi_M the target's penultimate features and p_reg their mean
over the public images (the regulariser that keeps features in the range real faces produce).
Model augmentation (Sec. 5): the students S_n, of other architectures, are distilled from the
target's soft outputs on PUBLIC images only (Hinton et al. 2015, temperature tau).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks.gmi import GMI
from attacks.kedmi import KEDMI
from attacks.plgmi import PLGMI
from benchmark.devices import module_device, to_device
from benchmark.progress import progress_bar
from benchmark.registry import Citation, register_attack
from tasks.face_models import build_image_model
from tasks.training import predict_in_batches

LOMMA_CITATION = Citation(
    "Re-thinking Model Inversion Attacks Against Deep Neural Networks",
    "Nguyen et al.",
    "CVPR",
    2023,
    "https://arxiv.org/abs/2304.01669",
)


class LOMMAStudents(nn.Module):
    """The augmented models and p_reg (the ``lomma`` block's artifact)."""

    version = "2"  # 2: p_reg and soft labels from the target in eval mode

    def __init__(self, students: list[nn.Module], feature_dim: int):
        super().__init__()
        self.students = nn.ModuleList(students)
        self.register_buffer("p_reg", torch.zeros(feature_dim))


@contextmanager
def captured_input(module: nn.Module):
    """Record the input of ``module`` during a forward pass (the target's features, read
    through one counted forward of the whole model)."""
    box: dict = {}
    handle = module.register_forward_hook(lambda m, inputs, output: box.update(value=inputs[0]))
    try:
        yield box
    finally:
        handle.remove()


def distil(
    student: nn.Module,
    images: torch.Tensor,
    soft_targets: torch.Tensor,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    temperature: float,
    desc: str,
    progress: bool,
) -> float:
    """Knowledge distillation on public images: KL(p_T^tau || p_S^tau) * tau^2, on the
    student's device."""
    device = module_device(student)
    images, soft_targets = to_device(images, device), to_device(soft_targets, device)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher_log = torch.log(soft_targets.clamp_min(1e-12)) / temperature
    steps = epochs * ((len(images) + batch_size - 1) // batch_size)
    student.train()
    with progress_bar(steps, desc, progress) as bar:
        for _ in range(epochs):
            order = torch.randperm(len(images), device=device)
            for start in range(0, len(images), batch_size):
                batch = order[start : start + batch_size]
                x = torch.where(
                    torch.rand(len(batch), 1, 1, 1, device=device) < 0.5,
                    images[batch].flip(-1),
                    images[batch],
                )
                loss = (
                    F.kl_div(
                        F.log_softmax(student(x) / temperature, dim=1),
                        F.log_softmax(teacher_log[batch], dim=1),
                        log_target=True,
                        reduction="batchmean",
                    )
                    * temperature**2
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                bar.update()
    student.eval()
    return loss.item()


class LOMMA:
    """Mixin placed before the base attack class."""

    runs_on_gpu = True  # the students train on the device they are given, like the base attack

    cfg: dict
    progress: bool

    def build_target_prior(self, task, target) -> dict:
        settings = self.cfg["lomma"]
        students = [
            build_image_model(name, task.num_classes, task.image_shape, {})
            for name in settings["students"]
        ]
        return {
            **super().build_target_prior(task, target),
            "lomma": LOMMAStudents(students, target.feature_dim),
        }

    def train_target_prior(self, model, public, target, teacher, progress: bool) -> dict:
        if not isinstance(model, LOMMAStudents):
            return super().train_target_prior(model, public, target, teacher, progress)
        meta = {}
        settings = self.cfg["lomma"]
        device = module_device(model)
        images = to_device(public.images, device)
        # one counted forward per public image gives both the soft labels and p_reg: the
        # target's features are read at its head's input, never through target.features,
        # which would run the target uncounted (issue 21: every target forward is counted)
        features: list[torch.Tensor] = []

        def teach(batch: torch.Tensor) -> torch.Tensor:
            with captured_input(target.head) as box:
                soft = teacher(batch)
            features.append(box["value"])
            return soft

        soft = predict_in_batches(teach, images)
        model.p_reg.copy_(torch.cat(features).mean(dim=0))
        for i, student in enumerate(model.students):
            meta[f"student{i}_kd_loss"] = distil(
                student,
                images,
                soft,
                epochs=int(settings["student_epochs"]),
                lr=float(settings["student_lr"]),
                batch_size=int(settings["batch_size"]),
                temperature=float(settings["temperature"]),
                desc=f"LOMMA student {i} (public data)",
                progress=progress,
            )
            agreement = predict_in_batches(student, images).argmax(1) == soft.argmax(1)
            meta[f"student{i}_agreement_public"] = agreement.float().mean().item()
        return meta

    def identity_loss(
        self, access, images: torch.Tensor, labels: torch.Tensor, target_prior: dict
    ) -> torch.Tensor:
        students = target_prior["lomma"]
        with captured_input(access.model.head) as box:
            logits = access.model(images)
        per_model = [-logits.gather(1, labels[:, None]).squeeze(1)]
        for student in students.students:
            per_model.append(-student(images).gather(1, labels[:, None]).squeeze(1))
        feature_term = (box["value"] - students.p_reg).pow(2).mean(dim=1)
        return (
            torch.stack(per_model).mean(dim=0)
            + float(self.cfg["lomma"]["lambda_reg"]) * feature_term
        )


@register_attack(
    "lomma-gmi", modalities=("image",), access="whitebox", version="1.1", citation=LOMMA_CITATION
)
class LOMMAGMI(LOMMA, GMI):
    """GMI with LOMMA's identity loss and augmented models."""


@register_attack(
    "lomma-kedmi", modalities=("image",), access="whitebox", version="1.1", citation=LOMMA_CITATION
)
class LOMMAKEDMI(LOMMA, KEDMI):
    """KEDMI with LOMMA's identity loss and augmented models."""


@register_attack(
    "lomma-plgmi", modalities=("image",), access="whitebox", version="1.1", citation=LOMMA_CITATION
)
class LOMMAPLGMI(LOMMA, PLGMI):
    """PLG-MI with LOMMA's identity loss (replacing the max-margin loss) and augmented models."""
