"""Embedding noise: Gaussian noise added to every released embedding (Morris et al., "Text
Embeddings Reveal (Almost) As Much As Text", EMNLP 2023, "Defending against inversion
attacks"):

    phi_noisy(x) = phi(x) + lambda * eps,   eps ~ N(0, I)

with ``lambda`` the YAML's ``scale``. The vector is released as it is, not renormalised, as in
the paper. Search over the noisy vectors still works while the noise is small against the
distance between documents; the inverter sees a perturbed target. The noise is drawn from the
cell's own generator, so a cell's released vectors are reproducible.
"""

import torch

from benchmark.methods import Defense
from benchmark.registry import Citation, register_defense


@register_defense(
    "embedding-noise",
    modalities=("embedding",),
    version="1.0",
    citation=Citation(
        "Text Embeddings Reveal (Almost) As Much As Text (defense: Gaussian noise)",
        "Morris et al.",
        "EMNLP",
        2023,
        "https://arxiv.org/abs/2310.06816",
    ),
)
class EmbeddingNoise(Defense):
    kind = "output"

    def transform_output(
        self, embeddings: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        noise = torch.randn(embeddings.shape, generator=generator, dtype=embeddings.dtype)
        return embeddings + float(self.cfg["scale"]) * noise
