"""Label smoothing as a training-time defense (Struppek et al., ICLR 2024, Eq. 1).

The target is trained on smoothed targets y_LS = (1 - alpha) * y + alpha / C. Struppek et al.
show that positive alpha can *increase* model-inversion leakage while negative alpha lowers it;
the YAML's ``alpha`` accepts both signs, so invbench measures rather than assumes the effect.
"""

import torch
import torch.nn.functional as F

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense

SMOOTHING_CITATION = Citation(
    "Be Careful What You Smooth For: Label Smoothing Can Be a Privacy Shield but Also a Catalyst "
    "for Model Inversion Attacks",
    "Struppek et al.",
    "ICLR",
    2024,
    "https://arxiv.org/abs/2310.06549",
)


@register_defense(
    "label-smoothing", modalities=("image", "graph"), version="1.0", citation=SMOOTHING_CITATION
)
class LabelSmoothing(Defense):
    kind = "train"
    runs_on_gpu = True  # its loss is built from the logits' own device

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.alpha = float(self.cfg["alpha"])  # the smoothing of the current epoch

    def training_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha
        num_classes = logits.shape[-1]
        smoothed = F.one_hot(labels, num_classes).float() * (1 - alpha) + alpha / num_classes
        return -(smoothed * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
