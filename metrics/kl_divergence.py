"""KL divergence between next-token distributions, row by row: the text tasks' utility (the
defended model's distribution against the undefended one) and the text attacks' inversion
objective (an observed release against the model's distribution for a candidate prompt).

    KL(p || q) = sum_v p_v (log p_v - log q_v)
"""

from __future__ import annotations

import torch


def kl_to_log_q(p: torch.Tensor, log_q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KL(p || q) per row from log q (differentiable in log q)."""
    p = p.clamp_min(0)
    return (p * (torch.log(p + eps) - log_q)).sum(-1)


def kl_divergence(p: torch.Tensor, q: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """KL(p || q) per row; zero entries of a top-k or label release are floored at eps."""
    return kl_to_log_q(p, torch.log(q.clamp_min(0) + eps), eps)
