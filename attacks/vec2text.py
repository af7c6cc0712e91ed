"""Vec2Text (Morris et al., "Text Embeddings Reveal (Almost) As Much As Text", EMNLP 2023):
embedding inversion by iterative correction with re-embedding.

1. Hypothesizer (Sec. 3, model 0): GEIA's inverter, trained on PUBLIC texts embedded through the
   API (``attacks/_embedding_decoder.py``), writes a first hypothesis x^(0) for the target
   embedding e.
2. Corrector (Eq. 2): a second decoder reads the target embedding, the hypothesis's embedding and
   their difference, (e, e^(t), e - e^(t)) as its prefix, and the hypothesis's tokens as its
   context, and writes a corrected text x^(t+1). It learns from the public texts, each with a
   hypothesizer's hypothesis embedded through the API, to write the true text.
   The paper's hypothesizer is trained on millions of texts, so its hypotheses of its own
   training texts err as on new ones. With hundreds that is false (it recites them), so two
   hypothesizers are trained, each on one half of the public texts, and each writes the other
   half's hypotheses; both give a first hypothesis of every target. The corrector starts from
   a hypothesizer's weights, reading e as it does (a departure that suits hundreds of texts).
3. Inference (Sec. 3, sequence-level beam search): for ``steps`` rounds, every kept hypothesis
   of a target is corrected by beam search into ``beam`` candidates; all are embedded through
   the API (one query per new text) and the ``beam`` texts whose embeddings are closest in
   cosine to e are kept. The earlier hypotheses compete with the new ones, so the best cosine
   never falls; the answer is the text of highest cosine. The record's ``attack_details`` give
   the mean best cosine after each round.

The paper trains T5-base on 5M passages and corrects for 50 steps with beam 8; at the mini's
scale both decoders are the small GPT-2 of ``attacks/_embedding_decoder.py`` and the rounds,
beam and public texts are set in the YAML.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from attacks._embedding_decoder import (
    EmbeddingDecoder,
    WordTokenizer,
    beam_decode,
    fit_decoder,
    fit_inverter,
    training_texts,
)
from benchmark.methods import Attack
from benchmark.registry import register_attack
from tasks.embeddings import VEC2TEXT


def correction_condition(target: torch.Tensor, hypothesis: torch.Tensor) -> torch.Tensor:
    """The corrector's condition (Eq. 2's inputs): [e, e_hat, e - e_hat]."""
    return torch.cat([target, hypothesis, target - hypothesis], dim=-1)


@register_attack(
    "vec2text", modalities=("embedding",), access="scores", version="1.0", citation=VEC2TEXT
)
class Vec2Text(Attack):
    def run(self, oracle, victims, prior, budget: dict, generator: torch.Generator) -> list[str]:
        # one query per text and one per its hypothesis
        texts = training_texts(oracle, victims, int(self.cfg["train_texts"]), share=2)
        embeddings = oracle(texts)
        tokenizer = WordTokenizer(texts)
        max_tokens = int(self.cfg["max_tokens"])
        # Two hypothesizers, each trained on one half of the public texts, write the other
        # half's hypotheses: the corrector learns from the errors a hypothesizer makes on texts
        # it has not seen, the errors it will meet on the private ones.
        folds = [torch.arange(fold, len(texts), 2) for fold in (0, 1)]
        bases = [
            fit_inverter([texts[i] for i in fold], embeddings[fold], self.cfg, generator, tokenizer)
            for fold in folds
        ]
        hypotheses = [""] * len(texts)
        for base, other in zip(bases, reversed(folds)):
            for i, text in zip(other.tolist(), base.invert(embeddings[other], 1, max_tokens)):
                hypotheses[i] = text
        corrector = warm_started_corrector(
            bases[0].decoder, embeddings.shape[1], self.cfg["decoder"]
        )
        fit_decoder(
            corrector,
            correction_condition(embeddings, oracle(hypotheses)),
            bases[0].contexts(hypotheses, max_tokens),
            bases[0].encode(texts),
            bases[0].eos,
            {**self.cfg["decoder"], "epochs": self.cfg["corrector_epochs"]},
            generator,
        )
        first = [base.invert(victims.observed, int(self.cfg["beam"]), max_tokens) for base in bases]
        return self._correct(
            oracle, victims.observed, [list(pair) for pair in zip(*first)], bases[0], corrector
        )

    def _correct(
        self,
        oracle,
        targets: torch.Tensor,
        first: list[list[str]],
        base,
        corrector: EmbeddingDecoder,
    ) -> list[str]:
        """Sequence-level beam search over corrections from the ``first`` hypotheses of each
        target, scored by cosine to it."""
        beam, max_tokens = int(self.cfg["beam"]), int(self.cfg["max_tokens"])
        embedded: dict[str, torch.Tensor] = {}
        embed_new(oracle, [text for texts in first for text in texts], embedded)
        kept = [
            sorted(dict.fromkeys(texts), key=lambda text: -cosine(target, embedded[text]))
            for target, texts in zip(targets, first)
        ]
        self._cosines = [
            [cosine(target, embedded[texts[0]])] for target, texts in zip(targets, kept)
        ]
        for _ in range(int(self.cfg["steps"])):
            rows = [(i, text) for i, hypotheses in enumerate(kept) for text in hypotheses]
            conditions = correction_condition(
                targets[[i for i, _ in rows]], torch.stack([embedded[text] for _, text in rows])
            )
            corrected = beam_decode(
                corrector,
                conditions,
                base.contexts([text for _, text in rows], max_tokens),
                base.eos,
                beam,
                max_tokens,
            )
            candidates: list[list[str]] = [list(hypotheses) for hypotheses in kept]
            for (i, _), texts in zip(rows, corrected):
                candidates[i].extend(base.decode(texts))
            exhausted = embed_new(oracle, [t for texts in candidates for t in texts], embedded)
            for i, target in enumerate(targets):
                pool = [text for text in dict.fromkeys(candidates[i]) if text in embedded]
                kept[i] = sorted(pool, key=lambda text: -cosine(target, embedded[text]))[:beam]
                self._cosines[i].append(cosine(target, embedded[kept[i][0]]))
            if exhausted:
                break
        return [hypotheses[0] for hypotheses in kept]

    def details(self) -> dict:
        """The mean cosine between target and best hypothesis after each round."""
        if not getattr(self, "_cosines", None):
            return {}
        rounds = len(self._cosines[0])
        return {
            "mean_cosine_per_round": [
                round(sum(c[r] for c in self._cosines) / len(self._cosines), 4)
                for r in range(rounds)
            ]
        }


def warm_started_corrector(base: EmbeddingDecoder, dim: int, settings: dict) -> EmbeddingDecoder:
    """A corrector that starts as the hypothesizer: the same GPT-2 weights, and a prefix map that
    reads e as the hypothesizer does and e_hat, e - e_hat not yet (zero weights)."""
    corrector = EmbeddingDecoder(
        3 * dim, base.gpt.config.vocab_size, settings, base.gpt.config.eos_token_id
    )
    corrector.gpt.load_state_dict(base.gpt.state_dict())
    with torch.no_grad():
        corrector.project.weight.zero_()
        corrector.project.weight[:, :dim] = base.project.weight
        corrector.project.bias.copy_(base.project.bias)
    return corrector


def embed_new(oracle, texts: list[str], embedded: dict[str, torch.Tensor]) -> bool:
    """Embed through the API the texts not embedded yet (one query each), as many as the query
    budget allows; True when the budget ran out."""
    new = [text for text in dict.fromkeys(texts) if text not in embedded]
    remaining = oracle.remaining()
    if remaining is not None and len(new) > remaining:
        new = new[:remaining]
        exhausted = True
    else:
        exhausted = remaining is not None and len(new) == remaining
    if new:
        embedded.update(zip(new, oracle(new).unbind()))
    return exhausted


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return F.cosine_similarity(a, b, dim=0).item()
