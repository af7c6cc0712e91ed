"""TL-DMI: transfer learning as a model-inversion defense (Ho et al., CVPR 2024).

The target is first trained on the PUBLIC identities (the defender's own public, labelled data),
then its first ``frozen_fraction`` of backbone parameters (the early layers, in module order) is
frozen and only the rest is fine-tuned on the private data (Sec. 4). Private information then
enters only the later layers, which the paper shows lowers attack accuracy at a small cost in
utility (it analyses this with the Fisher information of each layer).
"""

from __future__ import annotations

import torch.nn as nn
import torch.nn.functional as F

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense


@register_defense(
    "tl",
    modalities=("image",),
    version="1.0",
    citation=Citation(
        "Model Inversion Robustness: Can Transfer Learning Help?",
        "Ho et al.",
        "CVPR",
        2024,
        "https://arxiv.org/abs/2405.05588",
    ),
)
class TransferLearning(Defense):
    kind = "train"

    def fit_image_target(self, model, data, settings: dict, progress: bool) -> dict:
        private_head = model.head
        model.head = nn.Linear(private_head.in_features, int(data.public_y.max()) + 1)
        data.fit(
            model,
            data.public_x,
            data.public_y,
            {**settings, "epochs": int(self.cfg["pretrain_epochs"])},
            lambda m, x, y: F.cross_entropy(m(x), y),
            "TL pre-training (public)",
        )
        model.head = private_head
        backbone = list(model.backbone.parameters())
        frozen = int(round(float(self.cfg["frozen_fraction"]) * len(backbone)))
        for parameter in backbone[:frozen]:
            parameter.requires_grad_(False)
        data.fit_private(model, settings, self.training_step, "TL fine-tuning (private)")
        for parameter in backbone[:frozen]:
            parameter.requires_grad_(True)
        return {
            "public_pretrain_epochs": int(self.cfg["pretrain_epochs"]),
            "frozen_backbone_tensors": frozen,
            "backbone_tensors": len(backbone),
        }
