"""No defense: the target is trained with plain cross-entropy and releases its outputs as is."""

from benchmark.methods import Defense
from benchmark.registry import register_defense


@register_defense("none", version="1.0")
class NoDefense(Defense):
    kind = "none"
    runs_on_gpu = True
