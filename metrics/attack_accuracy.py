"""Attack accuracy: how often an independent evaluation model recognises the attacked identity."""

from __future__ import annotations

import torch

from benchmark.registry import Citation, register_metric

GMI = Citation(
    "The Secret Revealer: Generative Model-Inversion Attacks Against Deep Neural Networks",
    "Zhang et al.",
    "CVPR",
    2020,
    "https://arxiv.org/abs/1911.07135",
)


def attack_hits(logits: torch.Tensor, targets: torch.Tensor, k: int = 1) -> torch.Tensor:
    """1[target class in the evaluator's top k] per reconstruction, as floats [N].

    ``logits`` is [N, C] from the evaluation model on the reconstructions, ``targets`` [N] the
    attacked classes. With k >= C every reconstruction counts as correct.
    """
    k = min(k, logits.shape[1])
    topk = logits.topk(k, dim=1).indices
    return (topk == targets[:, None]).any(dim=1).float()


def attack_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int = 1) -> float:
    """Top-k accuracy: the mean over reconstructions of :func:`attack_hits`."""
    return attack_hits(logits, targets, k).mean().item()


register_metric("attack_acc@1", higher_is_better=True, modalities=("image",), citation=GMI)(
    attack_accuracy
)
register_metric("attack_acc@5", higher_is_better=True, modalities=("image",), citation=GMI)(
    attack_accuracy
)
