"""Negative label smoothing (Struppek et al., ICLR 2024): label smoothing with alpha < 0.

    y_LS = (1 - alpha) * y + alpha / C,  alpha < 0

The paper's defense: negative smoothing makes the target's confidence saturate early and leaves
attacks a flat, uninformative loss surface (Sec. 4); alpha = -0.05 on CelebA. The same loss as
``label-smoothing`` (``defenses/label_smoothing.py``), its own leaderboard row, and the paper's
schedule (its code's ``ls_scheduler``): plain cross-entropy for the first ``schedule[0]`` of the
epochs, then alpha ramped linearly from 0 to its value until ``schedule[1]``, then held (0.5 and
0.75 of training; negative smoothing from the first epoch does not train well). The image
tasks' training loop applies it; a graph target (full-batch, best-validation epoch kept) is
trained at the full alpha throughout.
"""

from benchmark.registry import register_defense
from defenses.label_smoothing import SMOOTHING_CITATION, LabelSmoothing


@register_defense(
    "negls", modalities=("image", "graph"), version="1.0", citation=SMOOTHING_CITATION
)
class NegativeLabelSmoothing(LabelSmoothing):
    def __init__(self, cfg=None):
        super().__init__(cfg)
        if float(self.cfg["alpha"]) >= 0:
            raise ValueError(
                f"negls needs alpha < 0, got {self.cfg['alpha']}; positive values "
                f"are the label-smoothing defense"
            )
        start, end = (float(x) for x in self.cfg.get("schedule", (0.0, 0.0)))
        if not 0 <= start <= end <= 1:
            raise ValueError(
                f"negls: schedule must be two fractions of training 0 <= start <= "
                f"end <= 1, got {self.cfg.get('schedule')}"
            )
        self.schedule = (start, end)

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """alpha at ``epoch``: 0 before schedule[0] x epochs, linear up to schedule[1]."""
        start, end = (fraction * epochs for fraction in self.schedule)
        if epoch < start:
            scale = 0.0
        elif epoch + 1 >= end:
            scale = 1.0
        else:
            scale = (epoch + 1 - start) / (end - start)
        self.alpha = float(self.cfg["alpha"]) * scale
