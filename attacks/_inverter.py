"""The learned inverter of logit2prompt and output2prompt: trained on PUBLIC prompts and what the
model released for them, applied to what it released for the secret ones (Morris et al., ICLR
2024, Sec. 4; Zhang et al., "Extracting Prompts by Inverting LLM Outputs", EMNLP 2024).

The papers fine-tune T5 on millions of pairs. At the mini's scale (hundreds of public prompts,
seconds of training on 2 cores) the inverter is a small GRU encoder-decoder with attention and a
copy mechanism (pointer-generator, See et al., ACL 2017, Eqs. 8-9):

    P(w) = p_gen P_vocab(w) + (1 - p_gen) sum_{i: x_i = w} a_i

so that a name seen in the release (a top token of the distribution, the address in a
continuation) can be written into the prompt although no public prompt held it. Both input and
output are words (``\\w+`` runs and single punctuation marks, sacreBLEU 13a's units); each output
word also predicts whether a space precedes it, so that the prompt's text is rebuilt exactly.
An input position may carry features (logit2prompt: the token's released log-probability).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._text import public_prompts

WORD = re.compile(r"\s*(?:\w+|[^\w\s])")
PAD, UNK, BOS, EOS = 0, 1, 2, 3


def split_words(text: str) -> list[tuple[bool, str]]:
    """(space before, word) for each word of ``text``."""
    return [(word[0].isspace(), word.strip()) for word in WORD.findall(text)]


def join_words(words: list[tuple[bool, str]]) -> str:
    return "".join((" " if space else "") + word for space, word in words).strip()


class Vocabulary:
    def __init__(self, sequences: list[list[str]]):
        counts = Counter(word for sequence in sequences for word in sequence)
        self.words = ["<pad>", "<unk>", "<s>", "</s>", *sorted(counts)]
        self.index = {word: i for i, word in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def id(self, word: str) -> int:
        return self.index.get(word, UNK)


@dataclass
class Example:
    """What the model released for one prompt, as words (and their features), and, for
    training, the prompt's words."""

    inputs: list[str]
    features: list[list[float]] | None = None
    prompt: list[tuple[bool, str]] | None = None


class CopyInverter(nn.Module):
    def __init__(self, in_size: int, out_size: int, width: int, features: int):
        super().__init__()
        self.out_size = out_size
        self.embed_in = nn.Embedding(in_size, width, padding_idx=PAD)
        self.feature = nn.Linear(features, width) if features else None
        self.encoder = nn.GRU(width, width, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * width, width)
        self.embed_out = nn.Embedding(out_size, width, padding_idx=PAD)
        self.decoder = nn.GRU(width, width, batch_first=True)
        self.key = nn.Linear(2 * width, width, bias=False)
        self.vocab = nn.Linear(3 * width, out_size)
        self.gate = nn.Linear(4 * width, 1)
        self.space = nn.Linear(3 * width, 1)

    def encode(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embed_in(batch["source"])
        if self.feature is not None:
            x = x + self.feature(batch["features"])
        memory, last = self.encoder(x)
        state = torch.tanh(self.bridge(torch.cat([last[0], last[1]], dim=-1)))
        return memory, state.unsqueeze(0)

    def decode(
        self, batch: dict, memory: torch.Tensor, previous: torch.Tensor, state: torch.Tensor
    ):
        """log P over the extended vocabulary (output words, then each example's copied
        words) [B, T, out + oov], space-before logits [B, T], and the decoder state, for the
        previous words [B, T] (copied words enter as <unk>)."""
        embedded = self.embed_out(previous.masked_fill(previous >= self.out_size, UNK))
        hidden, state = self.decoder(embedded, state)
        scores = hidden @ self.key(memory).transpose(1, 2)
        attention = scores.masked_fill(~batch["mask"][:, None, :], float("-inf")).softmax(-1)
        joint = torch.cat([hidden, attention @ memory], dim=-1)
        generate = torch.sigmoid(self.gate(torch.cat([joint, embedded], dim=-1)))
        B, T, _ = hidden.shape
        dist = torch.zeros(B, T, self.out_size + batch["oov_count"])
        dist[..., : self.out_size] = generate * self.vocab(joint).softmax(-1)
        dist.scatter_add_(
            2, batch["source_ext"][:, None, :].expand(-1, T, -1), (1 - generate) * attention
        )
        return torch.log(dist + 1e-12), self.space(joint).squeeze(-1), state


def make_batch(
    examples: list[Example], source: Vocabulary, target: Vocabulary, features: int
) -> dict:
    """Padded tensors; each example's input words missing from the output vocabulary get
    extended ids (out + k) so that the copy distribution can name them."""
    width = max(1, max(len(e.inputs) for e in examples))
    B = len(examples)
    batch = {
        "source": torch.zeros(B, width, dtype=torch.long),
        "source_ext": torch.full((B, width), UNK, dtype=torch.long),
        "mask": torch.zeros(B, width, dtype=torch.bool),
        "features": torch.zeros(B, width, max(features, 1)),
        "oov": [],
    }
    for row, example in enumerate(examples):
        oov: list[str] = []
        for col, word in enumerate(example.inputs):
            batch["source"][row, col] = source.id(word)
            batch["mask"][row, col] = True
            if target.id(word) == UNK:
                if word not in oov:
                    oov.append(word)
                batch["source_ext"][row, col] = len(target) + oov.index(word)
            else:
                batch["source_ext"][row, col] = target.id(word)
            if example.features is not None:
                batch["features"][row, col, :features] = torch.tensor(example.features[col])
        if not example.inputs:
            batch["mask"][row, 0] = True  # an empty release: attend to one padding position
        batch["oov"].append(oov)
    batch["oov_count"] = max(1, max(len(oov) for oov in batch["oov"]))
    if all(e.prompt is not None for e in examples):
        length = max(len(e.prompt) for e in examples) + 1
        words = torch.zeros(B, length, dtype=torch.long)
        spaces = torch.zeros(B, length)
        for row, example in enumerate(examples):
            ids = []
            for space, word in example.prompt:
                known = target.id(word)
                ids.append(
                    known
                    if known != UNK or word not in batch["oov"][row]
                    else len(target) + batch["oov"][row].index(word)
                )
            words[row, : len(ids) + 1] = torch.tensor([*ids, EOS])
            spaces[row, : len(ids)] = torch.tensor([float(s) for s, _ in example.prompt])
        batch["words"], batch["spaces"] = words, spaces
        batch["previous"] = torch.cat([torch.full((B, 1), BOS), words[:, :-1]], dim=1)
    return batch


class LearnedInverter:
    """Train on public examples, then invert released outputs to prompts."""

    def __init__(self, settings: dict, features: int = 0):
        self.settings, self.features = settings, features

    def fit(self, examples: list[Example], generator: torch.Generator) -> "LearnedInverter":
        self.source = Vocabulary([e.inputs for e in examples])
        self.target = Vocabulary([[word for _, word in e.prompt] for e in examples])
        self.model = CopyInverter(
            len(self.source), len(self.target), int(self.settings["width"]), self.features
        )
        optimizer = torch.optim.Adam(
            self.model.parameters(), lr=float(self.settings["lr"]), foreach=True
        )
        size = int(self.settings["batch_size"])
        self.model.train()
        for _ in range(int(self.settings["epochs"])):
            order = torch.randperm(len(examples), generator=generator).tolist()
            for start in range(0, len(order), size):
                batch = make_batch(
                    [examples[i] for i in order[start : start + size]],
                    self.source,
                    self.target,
                    self.features,
                )
                memory, state = self.model.encode(batch)
                log_probs, space, _ = self.model.decode(batch, memory, batch["previous"], state)
                real = batch["words"] != PAD
                words = F.nll_loss(log_probs[real], batch["words"][real])
                spaced = real & (batch["words"] != EOS)
                spaces = F.binary_cross_entropy_with_logits(space[spaced], batch["spaces"][spaced])
                optimizer.zero_grad(set_to_none=True)
                (words + spaces).backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
                optimizer.step()
        self.model.eval()
        return self

    @torch.no_grad()
    def invert(self, examples: list[Example], max_words: int) -> list[str]:
        """Greedy decoding, at most ``max_words`` words each."""
        batch = make_batch(examples, self.source, self.target, self.features)
        memory, state = self.model.encode(batch)
        previous = torch.full((len(examples), 1), BOS)
        out: list[list[tuple[bool, str]]] = [[] for _ in examples]
        done = [False] * len(examples)
        for _ in range(max_words):
            log_probs, space, state = self.model.decode(batch, memory, previous, state)
            picks = log_probs[:, -1].argmax(-1)
            for row, pick in enumerate(picks.tolist()):
                if done[row] or pick == EOS:
                    done[row] = True
                    continue
                copied = pick - len(self.target)
                if pick == UNK or copied >= len(batch["oov"][row]):
                    continue  # <unk>, or a copy slot this example has no word for
                word = self.target.words[pick] if copied < 0 else batch["oov"][row][copied]
                out[row].append((bool(space[row, -1] > 0), word))
            if all(done):
                break
            previous = picks[:, None]
        return [join_words(words) for words in out]


def invert_from_public(
    oracle, victims, settings: dict, to_example, generator: torch.Generator, features: int = 0
) -> list[str]:
    """What logit2prompt and output2prompt share: release the PUBLIC prompts (at most
    ``settings["train_prompts"]``, one query each), train the inverter on ``to_example(released,
    prompt)`` pairs, and invert what was released after the secrets (``to_example(released)``)."""
    tokenizer = victims.tokenizer
    public = public_prompts(victims)[: int(settings["train_prompts"])]
    inverter = LearnedInverter(settings["inverter"], features=features).fit(
        [to_example(out, tokenizer.decode(ids)) for out, ids in zip(oracle(public), public)],
        generator,
    )
    return inverter.invert([to_example(out) for out in victims.observed], max(victims.lengths) + 1)
