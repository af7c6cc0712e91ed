"""BREP-MI: boundary-repelling model inversion from labels only (Kahla et al., CVPR 2022).

The released model gives the argmax label only. For identity y, with latents of the public GAN
prior (Sec. 3):

1. Start: a latent z_0 whose image the target labels y (sampled from the prior until one is:
   here in rounds of ``init_fraction`` of the budget, at most ``init_rounds`` of them).
2. Boundary repulsion (Algorithm 1, Eqs. 5-7): sample N points z + R u_n on the sphere of
   radius R around z (u_n uniform on the unit sphere) and query their labels;
   with Phi_y(z') = 0 when the label is y and -1 otherwise (the "repulsion only" estimate),

       g = (1 / N) sum_n Phi_y(z + R u_n) R u_n / R

   points across the boundary push z away from it. Step z' = clip(z + alpha g) with
   alpha = min(R / 3, 3), z' kept only while it is still labelled y.
3. When more than 75% of the sphere is labelled y, the sphere grows: R <- 1.3 R. A latent whose
   sphere is all y lies deep inside the class region: the larger R, the more representative.
   A search ends after ``max_iters_at_radius`` steps at one radius, or when the budget is spent.

Paper defaults: N = 32, R_0 = 2, expansion 1.3, latents clipped to [-1.5, 1.5], up to 1000
iterations at one radius. Every reconstruction is an independent walk; all walks of all
identities step as one batch (a batch of N + 1 queries per active walk and step). A walk whose
identity never appears in the initial samples starts from the sample of its pool slot (its
walk has nothing to repel from; the record's accuracy shows it).
"""

from __future__ import annotations

import torch

from attacks._black_box import as_reconstructions, released, render, sample_latents, search_setup
from attacks.gan_prior import GANPrior, UsesGANPrior
from benchmark.methods import Attack
from benchmark.registry import Citation, register_attack


def labelled_starts(
    labels_of_pool: torch.Tensor, pool: torch.Tensor, chain_label: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each chain, a distinct pool latent the target labels as the chain's identity
    (the k-th chain of an identity takes its k-th such latent). Returns the latents and whether
    each chain found one."""
    starts = pool[: len(chain_label)].clone()
    found = torch.zeros(len(chain_label), dtype=torch.bool)
    for identity in chain_label.unique():
        chains = (chain_label == identity).nonzero().squeeze(1)
        hits = (labels_of_pool == identity).nonzero().squeeze(1)[: len(chains)]
        starts[chains[: len(hits)]] = pool[hits]
        found[chains[: len(hits)]] = True
    return starts, found


@register_attack(
    "brepmi",
    modalities=("image",),
    access="label",
    version="1.0",
    citation=Citation(
        "Label-Only Model Inversion Attacks via Boundary Repulsion",
        "Kahla et al.",
        "CVPR",
        2022,
        "https://arxiv.org/abs/2203.01925",
    ),
)
class BREPMI(UsesGANPrior, Attack):
    @torch.no_grad()
    def run(self, access, victims, prior: GANPrior, budget: dict, generator: torch.Generator):
        cfg = self.cfg
        net, labels, queries = search_setup(access, victims, prior)
        chains, z_dim = len(labels), prior.z_dim
        low, high = float(cfg["clip_min"]), float(cfg["clip_max"])
        points, expansion = int(cfg["sphere_points"]), float(cfg["expansion"])

        # Starting points: rounds of init_fraction of the budget each, until every walk has
        # one or init_rounds rounds are spent (the paper samples batches until it finds one)
        pool_size = max(int(queries * float(cfg["init_fraction"])), chains)
        pool, pool_labels = torch.empty(0, z_dim), torch.empty(0, dtype=torch.long)
        for _ in range(int(cfg["init_rounds"])):
            if access.remaining() < pool_size:
                break
            batch = sample_latents(pool_size, z_dim, high, generator)
            pool = torch.cat([pool, batch])
            pool_labels = torch.cat([pool_labels, released(access, net, batch).argmax(dim=1)])
            z, found = labelled_starts(pool_labels, pool, labels)
            if found.all():
                break
        if not len(pool):
            return as_reconstructions(
                render(net, sample_latents(chains, z_dim, high, generator)), victims
            )
        radius = torch.full((chains,), float(cfg["initial_radius"]))
        at_radius = torch.zeros(chains, dtype=torch.long)
        active = found.clone()
        while active.any():
            ids = active.nonzero().squeeze(1)
            if access.remaining() < len(ids) * (points + 1):
                break
            r = radius[ids][:, None, None]
            directions = torch.randn(len(ids), points, z_dim, generator=generator)
            offsets = directions / directions.norm(dim=2, keepdim=True) * r
            sphere = (z[ids][:, None] + offsets).flatten(0, 1)
            inside = (
                released(access, net, sphere).argmax(dim=1).view(len(ids), points)
                == labels[ids][:, None]
            )
            repel = inside.float() - 1  # Phi_y: 0 inside, -1 outside (repulsion only)
            step = (radius[ids] / 3).clamp_max(3)[:, None]
            gradient = (repel[..., None] * offsets).mean(dim=1) / r[:, 0]
            candidate = (z[ids] + step * gradient).clamp(low, high)
            keep = released(access, net, candidate).argmax(dim=1) == labels[ids]
            z[ids[keep]] = candidate[keep]
            grow = inside.float().mean(dim=1) > float(cfg["grow_when_inside"])
            radius[ids[grow]] *= expansion
            at_radius[ids] = torch.where(grow, 0, at_radius[ids] + 1)
            active[ids] = at_radius[ids] < int(cfg["max_iters_at_radius"])
        return as_reconstructions(render(net, z), victims)
