"""A relaxed symmetric adjacency optimised through a white-box GCN (GraphMI, MC-GRA).

The attack variable is one weight in [0, 1] per node pair, held as a symmetric n x n matrix S.
Gradients with respect to S are computed in closed form (``DenseGCN``) and applied as in-place
low-rank updates, because autograd through the n x n operations allocates a dozen n x n
temporaries per step. Everything per step is O(n^2) elementwise or an n x n times n x hidden
product (``tasks/graph_models.dense_gcn_propagate``); nothing forms the normalised adjacency times the
n x F feature matrix, which is what makes the reference code's step cost seconds on Cora.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tasks.graph_models import normalized_propagation


def require_gcn(access) -> torch.nn.Module:
    model = access.model
    if getattr(model, "architecture", None) != "GCN":
        raise ValueError(
            f"this attack optimises a relaxed adjacency through a GCN's propagation rule; the "
            f"target is {getattr(model, 'architecture', type(model).__name__)}. Run it with "
            f"task.target.model=gcn"
        )
    return model


class RelaxedAdjacency:
    """A symmetric relaxed adjacency S with zero diagonal: one weight a_ij = S_ij = S_ji in
    [0, 1] per node pair, updated in place from the pair gradient dL/da_ij = G_ij + G_ji."""

    def __init__(self, num_nodes: int):
        self.matrix = torch.zeros(num_nodes, num_nodes)

    @torch.no_grad()
    def step(self, low_rank: tuple[torch.Tensor, torch.Tensor], lr: float) -> None:
        """S -= lr (U V^T + V U^T): the symmetrised gradient of a low-rank G = U V^T, applied
        with one in-place rank-2k update (no n x n temporary)."""
        left, right = low_rank
        self.matrix.addmm_(torch.cat([left, right], 1), torch.cat([right, left], 1).T, alpha=-lr)
        self.matrix.fill_diagonal_(0)

    @torch.no_grad()
    def project(self, budget: float, tolerance: float = 1e-4) -> None:
        """Euclidean projection onto {0 <= a <= 1, sum_{i<j} a_ij <= budget} (GraphMI,
        Sec. 3.2; Xu et al. IJCAI 2019, Eq. 9): a <- clip(a - mu, 0, 1), with mu >= 0 the root
        of h(mu) = sum_{i<j} clip(a_ij - mu, 0, 1) - budget.

        With a already in [0, 1], h(mu) = sum_{a > mu} (a - mu) - budget on mu >= 0: convex,
        decreasing and piecewise linear, so Newton's method from mu = 0 climbs to the root
        from below without overshooting and is exact once the set {a > mu} stops changing
        (a handful of steps). Entries at or below the current mu never count again and are
        dropped, so after the first step each pass touches only the entries near the top;
        bisection over all n^2 entries to the same precision took ~17 full passes."""
        self.matrix.clamp_(0, 1)
        if float(self.matrix.sum()) / 2 <= budget:
            return
        candidates, mu = self.matrix.view(-1), 0.0
        while True:
            # h(mu) and -h'(mu) over both triangles (each pair counted twice); the count is
            # the sum of signs of the clipped values, which avoids a boolean mask's int64 sum.
            above = (candidates - mu).clamp_(min=0)
            excess = float(above.sum()) - 2 * budget
            if excess <= 2 * tolerance:
                break
            mu += excess / float(above.sign_().sum())
            candidates = candidates[candidates > mu]
        self.matrix.sub_(mu).clamp_(0, 1)


class DenseGCN:
    """A 2-layer GCN (eval mode) on a dense symmetric adjacency S, with its gradient with
    respect to S in closed form.

    Forward (Kipf and Welling, Eq. 2; r = (S 1 + 1)^-1/2, P_l = input_l W_l):

        Z_l = r * (S (r * P_l)) + r^2 * P_l + b_l,   H = ReLU(Z_1),   P_2 = H W_2

    Backward: given dL/dZ_2 and any direct dL/dH (from losses on the logits and the hidden
    representations, computed by autograd on these n x k tensors only), dL/dS is

        sum_l (r * dZ_l) (r * P_l)^T + (dL/d deg) 1^T,

    a rank-(k_1 + k_2 + 1) matrix that is never formed: the update applies it in place.
    """

    def __init__(self, access, features: torch.Tensor):
        self.access = access
        model = require_gcn(access)
        with torch.no_grad():
            self.p1 = model.conv1.lin(features)
        self.w2 = model.conv2.lin.weight.detach()
        self.b1 = model.conv1.bias.detach()
        self.b2 = model.conv2.bias.detach()

    @torch.no_grad()
    def forward(self, adjacency: torch.Tensor) -> dict:
        s = adjacency
        self.access.queries += len(s)  # one white-box forward over every node
        degree = s.sum(dim=1)
        r = (degree + 1).rsqrt().unsqueeze(1)
        sq1, z1 = normalized_propagation(s, r, self.p1)
        z1 = z1 + self.b1
        hidden = z1.clamp_min(0)
        p2 = hidden @ self.w2.T
        sq2, z2 = normalized_propagation(s, r, p2)
        z2 = z2 + self.b2
        return {
            "s": s,
            "degree": degree,
            "r": r,
            "sq1": sq1,
            "z1": z1,
            "hidden": hidden,
            "p2": p2,
            "sq2": sq2,
            "logits": z2,
        }

    @torch.no_grad()
    def low_rank_gradient(
        self,
        state: dict,
        d_logits: torch.Tensor,
        d_hidden: torch.Tensor | None = None,
        d_degree: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, V) with dL/dS = U V^T, for upstream gradients on the logits, the hidden layer
        and the degrees (e.g. from a degree-dependent regulariser)."""
        s, r, p1, p2 = state["s"], state["r"], self.p1, state["p2"]
        back2 = s @ (r * d_logits)
        d_p2 = r * back2 + r * r * d_logits
        d_h = d_p2 @ self.w2 + (0 if d_hidden is None else d_hidden)
        d_z1 = d_h * (state["z1"] > 0)
        back1 = s @ (r * d_z1)
        d_r = (
            (d_logits * state["sq2"]).sum(1)
            + (back2 * p2).sum(1)
            + 2 * r.squeeze(1) * (d_logits * p2).sum(1)
            + (d_z1 * state["sq1"]).sum(1)
            + (back1 * p1).sum(1)
            + 2 * r.squeeze(1) * (d_z1 * p1).sum(1)
        )
        d_deg = d_r * -0.5 * r.squeeze(1).pow(3)
        if d_degree is not None:
            d_deg = d_deg + d_degree
        ones = torch.ones_like(d_deg).unsqueeze(1)
        left = torch.cat([r * d_logits, r * d_z1, d_deg.unsqueeze(1)], 1)
        right = torch.cat([r * p2, r * p1, ones], 1)
        return left, right


def feature_smoothness(
    adjacency: torch.Tensor, gram: torch.Tensor, sq_norms: torch.Tensor, eps: float = 1e-3
) -> tuple[float, torch.Tensor, torch.Tensor]:
    """tr(X^T L X) with L = D^-1/2 (D - A) D^-1/2 and D = diag(A 1) + eps (GraphMI, Eq. 5):

        sm = sum_i d_i rho_i^2 ||x_i||^2 - rho^T (A * K) rho,   rho = (d + eps)^-1/2, K = X X^T

    computed from the precomputed Gram matrix K in O(n^2), with its gradient split as
    dsm/dA = -(K * rho rho^T) + (dsm/dd) 1^T: returns (sm, rho, dsm/dd)."""
    degree = adjacency.sum(dim=1)
    rho = (degree + eps).rsqrt()
    weighted = (adjacency * gram) @ rho
    value = float((degree * rho.pow(2) * sq_norms).sum() - rho @ weighted)
    d_rho = 2 * degree * rho * sq_norms - 2 * weighted
    d_degree = rho.pow(2) * sq_norms + d_rho * -0.5 * rho.pow(3)
    return value, rho, d_degree


@torch.no_grad()
def smoothness_step(
    adjacency: RelaxedAdjacency, gram: torch.Tensor, rho: torch.Tensor, weight: float, lr: float
) -> None:
    """The direct part of the smoothness gradient, -(K * rho rho^T), symmetric, so the pair
    gradient is twice it: S += 2 lr weight (K * rho rho^T), off the diagonal."""
    update = gram * rho.unsqueeze(1)
    update *= rho.unsqueeze(0)
    adjacency.matrix.add_(update, alpha=2 * lr * weight)
    adjacency.matrix.fill_diagonal_(0)


def cosine_scores(embeddings: torch.Tensor) -> torch.Tensor:
    """The graph auto-encoder's inner-product decoder on L2-normalised node embeddings."""
    normalised = F.normalize(embeddings, dim=1)
    return normalised @ normalised.T
