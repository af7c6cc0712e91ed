"""MIRROR, black-box (An et al., NDSS 2022, Sec. IV-C): a genetic search in the public GAN's
latent space, driven by the released confidence of the attacked identity only.

For identity y, the fitness of a latent w is the released log-confidence (Sec. IV-C)

    f(w) = log T_y(G(w))

1. Initial population: sample a pool of latents, query them once, keep for each identity the
   ``population`` latents of highest f (one pool serves every identity: a query releases the
   whole probability vector).
2. Each generation keeps the elite (the best latent) and breeds ``population - 1`` children:
   parents are drawn with probability softmax(f); a child takes each coordinate from its
   first parent with probability c1 / (c1 + c2), ci the parents' confidences (uniform
   crossover weighted by fitness); each coordinate mutates with probability ``mutation_prob``
   by uniform noise of half-width ``mutation_scale``; children are clipped to the latent box
   (the paper's mean +- 1 std bound in StyleGAN's P space; here N(0, I)'s [-1, 1]).
3. A search stops when its elite's confidence reaches ``min_score`` (0.95) or after
   ``generations``; its elite is the reconstruction.

Each reconstruction is an independent search (the paper's one run per identity, repeated
``samples_per_identity`` times); all searches evolve as one batch. The suite's query budget is
spread as: ``pool_fraction`` of it on the initial pool, the rest over the paper's 100
generations, which fixes the population (at most the paper's 100). StyleGAN is replaced by the
suite's shared WGAN-GP prior (``attacks/gan_prior.py``), as for every GAN attack here.
"""

from __future__ import annotations

import torch

from attacks._black_box import (
    FLOOR,
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


def initial_population(
    scores: torch.Tensor, pool: torch.Tensor, labels: torch.Tensor, per_class: int, population: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """For chain j of identity y (chains ordered identity by identity), the pool's latents of
    ranks j, j + per_class, j + 2 per_class, ... by f: the searches of one identity start from
    disjoint populations. Returns latents [chains, population, d] and their fitness."""
    chains = len(labels)
    order = scores[:, labels].argsort(dim=0, descending=True)  # [pool, chains]
    offset = torch.arange(chains) % per_class
    ranks = offset[None, :] + per_class * torch.arange(population)[:, None]  # [population, chains]
    picked = order.gather(0, ranks.clamp_max(len(pool) - 1))
    fitness = scores[:, labels].gather(0, picked).T
    return pool[picked.T], fitness


@register_attack(
    "mirror-b",
    modalities=("image",),
    access="scores",
    version="1.0",
    citation=Citation(
        "MIRROR: Model Inversion for Deep Learning Network with High Fidelity",
        "An et al.",
        "NDSS",
        2022,
        "https://www.ndss-symposium.org/ndss-paper/auto-draft-203/",
    ),
)
class MirrorBlackBox(UsesGANPrior, Attack):
    @torch.no_grad()
    def run(self, access, victims, prior: GANPrior, budget: dict, generator: torch.Generator):
        cfg = self.cfg
        net, labels, queries = search_setup(access, victims, prior)
        chains, z_dim, clip = len(labels), prior.z_dim, float(cfg["clip"])
        pool_size = max(int(queries * float(cfg["pool_fraction"])), victims.per_class * 2)
        generations = int(cfg["generations"])
        population = min(
            int(cfg["population"]), max(2, (queries - pool_size) // (chains * generations) + 1)
        )

        pool = sample_latents(pool_size, z_dim, clip, generator)
        pool_scores = released(access, net, pool).clamp_min(FLOOR).log()  # f for every class
        z, fitness = initial_population(pool_scores, pool, labels, victims.per_class, population)
        active = torch.ones(chains, dtype=torch.bool)
        threshold = torch.tensor(float(cfg["min_score"])).log()
        for _ in range(generations):
            best = fitness.argmax(dim=1)
            elite = z[torch.arange(chains), best]
            elite_fitness = fitness[torch.arange(chains), best]
            z[:, 0], fitness[:, 0] = elite, elite_fitness  # the elite survives in slot 0
            active &= elite_fitness < threshold
            if not active.any() or access.remaining() < int(active.sum()) * (population - 1):
                break
            ids = active.nonzero().squeeze(1)
            children = self.breed(z[ids], fitness[ids], generator, clip)
            child_labels = labels[ids].repeat_interleave(population - 1)
            child_fitness = log_confidence(
                released(access, net, children.flatten(0, 1)), child_labels
            ).view(len(ids), population - 1)
            z[ids, 1:], fitness[ids, 1:] = children, child_fitness
        best = fitness.argmax(dim=1)
        return as_reconstructions(render(net, z[torch.arange(chains), best]), victims)

    def breed(
        self, z: torch.Tensor, fitness: torch.Tensor, generator: torch.Generator, clip: float
    ) -> torch.Tensor:
        """``population - 1`` children per chain: fitness-proportional (softmax) parents,
        confidence-weighted uniform crossover, uniform mutation, clipping (Sec. IV-C)."""
        chains, population, z_dim = z.shape
        n = population - 1
        parents = torch.multinomial(
            torch.softmax(fitness, dim=1), 2 * n, replacement=True, generator=generator
        )
        first, second = parents[:, :n], parents[:, n:]
        rows = torch.arange(chains)[:, None]
        confidence = fitness.exp()
        share = confidence[rows, first] / (confidence[rows, first] + confidence[rows, second])
        take_first = torch.rand(chains, n, z_dim, generator=generator) < share[..., None]
        children = torch.where(take_first, z[rows, first], z[rows, second])
        mutate = torch.rand(children.shape, generator=generator) < float(self.cfg["mutation_prob"])
        noise = (torch.rand(children.shape, generator=generator) * 2 - 1) * float(
            self.cfg["mutation_scale"]
        )
        return (children + mutate * noise).clamp(-clip, clip)
