"""C2FMI: coarse-to-fine black-box model inversion (Ye et al., IEEE TDSC 2023).

Stage I, coarse (Sec. IV-B): an inverse network P learns to map the target's released output
back to the public GAN's latent. It is trained on the attacker's own samples:
z ~ N(0, I), x = G(z), p = T(x) released (one query each), minimising ||P(p) - z||^2. For
identity y, P applied to the output the attacker wishes for (the one-hot e_y, as the paper's
prediction vector with the target entry set high) gives a latent z_y whose image the target
should take for y: the starting point of every search of that identity.

Stage II, fine (Sec. IV-C): differential evolution around z_y on the released confidence,
f(z) = log T_y(G(z)). A population starts at z_y + sigma * noise; each generation builds, for
each member x_i, the mutant v_i = x_i + F (x_best - x_i) + F (x_r1 - x_r2) (DE/current-to-best/1),
crosses it with x_i coordinate-wise with probability CR (binomial, one coordinate always from
v_i), clips it to the latent box and keeps it when its fitness is not worse (greedy selection).
The best member is the reconstruction.

Where this departs from the paper: the paper's inverse network maps predictions to the feature
space of a public face-recognition model and stage I then optimises the latent by gradient
through that model; here, with no public face model at mini scale, P maps predictions straight
to the prior's latent (the issue's formulation). Each reconstruction is one DE run; all runs of
all identities evolve as one batch. The budget: ``inverse_fraction`` of the suite's queries
label P's training samples; the DE runs spend the rest (up to the paper's 500 generations).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._black_box import (
    as_reconstructions,
    log_confidence,
    released,
    render,
    sample_latents,
    search_setup,
)
from attacks.gan_prior import GANPrior, UsesGANPrior
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


def train_inverse(
    outputs: torch.Tensor,
    latents: torch.Tensor,
    *,
    hidden: int,
    steps: int,
    batch_size: int,
    lr: float,
) -> nn.Module:
    """P: released output -> latent, an MLP fitted by MSE on the attacker's labelled samples."""
    inverse = nn.Sequential(
        nn.Linear(outputs.shape[1], hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, latents.shape[1]),
    )
    optimizer = torch.optim.Adam(inverse.parameters(), lr=lr)
    for _ in range(steps):
        batch = torch.randint(len(outputs), (min(batch_size, len(outputs)),))
        loss = F.mse_loss(inverse(outputs[batch]), latents[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return inverse.eval()


@register_attack(
    "c2fmi",
    modalities=("image",),
    access="scores",
    version="1.0",
    citation=Citation(
        "C2FMI: Corse-to-Fine Black-box Model Inversion Attack",
        "Ye et al.",
        "IEEE TDSC",
        2023,
        "https://doi.org/10.1109/TDSC.2023.3285071",
    ),
)
class C2FMI(UsesGANPrior, Attack):
    def run(self, access, victims, prior: GANPrior, budget: dict, generator: torch.Generator):
        cfg = self.cfg
        net, labels, queries = search_setup(access, victims, prior)
        chains, z_dim, clip = len(labels), prior.z_dim, float(cfg["clip"])

        # Stage I: the inverse network and each identity's starting latent
        samples = sample_latents(
            int(queries * float(cfg["inverse_fraction"])), z_dim, clip, generator
        )
        outputs = released(access, net, samples)
        inverse = train_inverse(
            outputs,
            samples,
            hidden=int(cfg["inverse_hidden"]),
            steps=int(cfg["inverse_steps"]),
            batch_size=int(cfg["inverse_batch_size"]),
            lr=float(cfg["inverse_lr"]),
        )
        with torch.no_grad():
            wished = F.one_hot(labels, outputs.shape[1]).float()
            start = inverse(wished).clamp(-clip, clip)

        # Stage II: differential evolution from there, on the released confidence
        population = min(int(cfg["population"]), access.remaining() // chains)
        if population < 4:  # DE/current-to-best/1 needs x_i, r1 and r2 distinct
            return as_reconstructions(render(net, start), victims)
        generations = min(int(cfg["generations"]), access.remaining() // (chains * population) - 1)
        z = (
            start[:, None]
            + float(cfg["init_sigma"]) * torch.randn(chains, population, z_dim, generator=generator)
        ).clamp(-clip, clip)
        fitness = self.fitness(access, net, z, labels)
        for _ in range(generations):
            trial = self.trial(z, fitness, generator, clip)
            trial_fitness = self.fitness(access, net, trial, labels)
            better = trial_fitness >= fitness
            z = torch.where(better[..., None], trial, z)
            fitness = torch.where(better, trial_fitness, fitness)
        best = z[torch.arange(chains), fitness.argmax(dim=1)]
        return as_reconstructions(render(net, best), victims)

    @staticmethod
    def fitness(access, net, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        chains, population, _ = z.shape
        probs = released(access, net, z.flatten(0, 1))
        return log_confidence(probs, labels.repeat_interleave(population)).view(chains, population)

    def trial(
        self, z: torch.Tensor, fitness: torch.Tensor, generator: torch.Generator, clip: float
    ) -> torch.Tensor:
        """DE/current-to-best/1 mutants with binomial crossover (Sec. IV-C)."""
        chains, population, z_dim = z.shape
        scale, crossover = float(self.cfg["de_f"]), float(self.cfg["de_cr"])
        rows = torch.arange(chains)[:, None]
        best = z[torch.arange(chains), fitness.argmax(dim=1)][:, None]
        draw = torch.rand(chains, population, population, generator=generator)
        draw[:, torch.arange(population), torch.arange(population)] = 2.0  # r1, r2 != i
        r1, r2 = draw.argsort(dim=2)[..., :2].unbind(-1)
        mutant = z + scale * (best - z) + scale * (z[rows, r1] - z[rows, r2])
        cross = torch.rand(chains, population, z_dim, generator=generator) < crossover
        forced = torch.randint(z_dim, (chains, population, 1), generator=generator)
        cross.scatter_(2, forced, True)
        return torch.where(cross, mutant, z).clamp(-clip, clip)
