"""MI-Face (Fredrikson et al., CCS 2015, Algorithm 1): gradient descent in pixel space on

    c(x) = 1 - f_y(x)

the target's probability of the attacked identity, pixels kept in [0, 1]. No prior of any kind:
the floor every attack that uses a prior or the target's internals must beat. Each restart
starts from the all-zero image of the paper plus small seeded noise (so that restarts differ).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks._image_objectives import search_in_budget
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


@register_attack(
    "miface",
    modalities=("image",),
    access="whitebox",
    version="1.0",
    citation=Citation(
        "Model Inversion Attacks that Exploit Confidence Information and Basic Countermeasures",
        "Fredrikson et al.",
        "CCS",
        2015,
        "https://doi.org/10.1145/2810103.2813677",
    ),
)
class MIFace(Attack):
    runs_on_gpu = True

    def run(self, access, victims, prior, budget: dict, generator: torch.Generator):
        labels = victims.classes.to(self.device).repeat_interleave(victims.per_class)
        x = (
            float(self.cfg["init_noise"])
            * torch.rand(len(labels), *victims.image_shape, generator=generator, device=self.device)
        ).requires_grad_(True)
        optimizer = torch.optim.SGD([x], lr=float(self.cfg["lr"]))

        def loss() -> torch.Tensor:
            return 1 - F.softmax(access.model(x), dim=1).gather(1, labels[:, None]).squeeze(1)

        search_in_budget(self, [x], loss, optimizer, budget, after_step=lambda: x.clamp_(0, 1))
        return x.detach().view(len(victims.classes), victims.per_class, *victims.image_shape)
