"""The upper-triangular pair space both edge-level DP defenses perturb (as in LinkTeller).

An undirected graph on n nodes is a bit per pair i < j; ``pair_bits`` lays those bits out in
``np.triu_indices(n, 1)`` order. Materialising all n(n-1)/2 pairs is what the mechanisms
require; it is refused beyond ``MAX_PAIRS`` with a message instead of exhausting memory.
"""

from __future__ import annotations

import numpy as np

MAX_PAIRS = 60_000_000  # ~11k nodes; PubMed (19,717 nodes, 194M pairs) is beyond it


def check_size(name: str, num_nodes: int) -> int:
    pairs = num_nodes * (num_nodes - 1) // 2
    if pairs > MAX_PAIRS:
        raise ValueError(
            f"{name} perturbs every one of the {pairs:,} node pairs of this {num_nodes}-node "
            f"graph, more than the {MAX_PAIRS:,} it materialises; use it on graphs up to about "
            f"11,000 nodes (cora, citeseer, sbm-citation)"
        )
    return pairs


def pair_bits(edges: np.ndarray, num_nodes: int) -> np.ndarray:
    """Boolean vector over pairs i < j (triu order): True where (i, j) is an edge."""
    rows, cols = edges[:, 0], edges[:, 1]
    # Index of (i, j), i < j, in row-major upper-triangular order.
    index = rows * num_nodes - rows * (rows + 1) // 2 + (cols - rows - 1)
    bits = np.zeros(num_nodes * (num_nodes - 1) // 2, dtype=bool)
    bits[index] = True
    return bits


def edges_of(selected: np.ndarray, num_nodes: int) -> np.ndarray:
    """Edges [E, 2] (i < j) of the pairs whose triu-order index is in ``selected``."""
    rows, cols = np.triu_indices(num_nodes, k=1)
    return np.stack([rows[selected], cols[selected]], axis=1).astype(np.int64)
