"""Negative label smoothing (Struppek et al., ICLR 2024): label smoothing with alpha < 0.

    y_LS = (1 - alpha) * y + alpha / C,  alpha < 0

The paper's defense: negative smoothing makes the target's confidence saturate early and leaves
attacks a flat, uninformative loss surface (Sec. 4); alpha = -0.05 on CelebA. The same
implementation as ``label-smoothing`` (``defenses/label_smoothing.py``), its own leaderboard row.
"""

from benchmark.registry import register_defense
from defenses.label_smoothing import SMOOTHING_CITATION, LabelSmoothing


@register_defense("negls", modalities=("image", "graph"), defense_kind="train", version="1.0",
                  citation=SMOOTHING_CITATION)
class NegativeLabelSmoothing(LabelSmoothing):
    def __init__(self, cfg=None):
        super().__init__(cfg)
        if float(self.cfg["alpha"]) >= 0:
            raise ValueError(f"negls needs alpha < 0, got {self.cfg['alpha']}; positive values "
                             f"are the label-smoothing defense")
