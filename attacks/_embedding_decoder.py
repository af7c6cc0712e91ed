"""What geia and vec2text share: a GPT-2-architecture decoder conditioned on embeddings, trained
on PUBLIC texts and the embeddings the API released for them.

The condition (one or more embedding vectors, concatenated) is projected to ``prefix`` input
vectors that precede the tokens (GEIA's conditioning, Li et al., ACL Findings 2023, Sec. 3.2:
the sentence embedding, aligned to the decoder's width, is its first input). A row may carry a
context before the text, separated by ``<sep>``: vec2text's corrector reads the hypothesis it
corrects there (Morris et al., EMNLP 2023, Sec. 3). One row is

    [prefix vectors] [left padding] [context tokens] <sep> [text tokens] <|endoftext|>

The papers fine-tune pretrained GPT-2 and T5 on millions of sentences; at the mini's scale the
decoder is a small GPT-2 trained from scratch on hundreds of public records, and writes WORDS of
the public texts (:class:`WordTokenizer`). On ``minilm-embeddings`` (20 secrets, one run each)
a byte-level BPE learnt from the same 500 texts gave 23.5 BLEU in 36 s, words 24.7 in 27 s: the
few examples go to the words, not to spelling them. A word no public text holds cannot be
written.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from attacks._inverter import join_words, split_words
from attacks._text import public_texts

EOS, SEP, UNK = "<|endoftext|>", "<sep>", "<unk>"


class WordTokenizer:
    """Words of the PUBLIC texts as tokens: each word (a ``\\w+`` run or one punctuation mark,
    sacreBLEU 13a's units) with whether a space precedes it, so that a text is rebuilt exactly.
    A word no public text holds is <unk> (written as nothing)."""

    def __init__(self, texts: list[str]):
        pieces = sorted({piece for text in texts for piece in split_words(text)})
        self.pieces = [(False, EOS), (False, SEP), (False, UNK), *pieces]
        self.index = {piece: i for i, piece in enumerate(self.pieces)}

    def token_to_id(self, token: str) -> int:
        return self.index[(False, token)]

    def get_vocab_size(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> list[int]:
        unk = self.token_to_id(UNK)
        return [self.index.get(piece, unk) for piece in split_words(text)]

    def decode(self, ids: list[int]) -> str:
        return join_words([self.pieces[i] for i in ids if i >= 3])


@dataclass
class Rows:
    """A batch laid out for the decoder: ids [B, T] (the prefix positions hold padding ids),
    attention mask [B, P + T], position ids [B, P + T]."""

    ids: torch.Tensor
    mask: torch.Tensor
    positions: torch.Tensor


class EmbeddingDecoder(nn.Module):
    """GPT-2 whose first ``prefix`` inputs are a linear map of the condition vector."""

    def __init__(self, condition_dim: int, vocab_size: int, settings: dict, eos: int):
        super().__init__()
        from transformers import GPT2Config, GPT2LMHeadModel

        width, self.prefix = int(settings["width"]), int(settings["prefix"])
        self.gpt = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocab_size,
                n_positions=int(settings["positions"]),
                n_embd=width,
                n_layer=int(settings["layers"]),
                n_head=int(settings["heads"]),
                bos_token_id=eos,
                eos_token_id=eos,
            )
        )
        self.project = nn.Linear(condition_dim, self.prefix * width)

    def forward(self, condition: torch.Tensor, rows: Rows) -> torch.Tensor:
        """Next-token logits [B, P + T, vocab] of each position."""
        prefix = self.project(condition).view(len(condition), self.prefix, -1)
        tokens = self.gpt.get_input_embeddings()(rows.ids)
        return self.gpt(
            inputs_embeds=torch.cat([prefix, tokens], dim=1),
            attention_mask=rows.mask,
            position_ids=rows.positions,
        ).logits


def layout(contexts: list[list[int]], texts: list[list[int]], prefix: int, pad: int) -> Rows:
    """Rows of ``[prefix] [left pad] context <sep>-ended ... text [right pad]``: each context
    (ending in <sep>) is left-padded to a common width so that the texts start together, then
    each text is right-padded. Positions count only the unmasked inputs."""
    width = max(map(len, contexts))
    length = max(map(len, texts), default=0)
    ids = torch.full((len(contexts), width + length), pad, dtype=torch.long)
    mask = torch.zeros((len(contexts), prefix + width + length), dtype=torch.long)
    mask[:, :prefix] = 1
    for row, (context, text) in enumerate(zip(contexts, texts)):
        ids[row, width - len(context) : width] = torch.tensor(context, dtype=torch.long)
        ids[row, width : width + len(text)] = torch.tensor(text, dtype=torch.long)
        mask[row, prefix + width - len(context) : prefix + width + len(text)] = 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    return Rows(ids, mask, positions)


def fit_decoder(
    decoder: EmbeddingDecoder,
    conditions: torch.Tensor,
    contexts: list[list[int]],
    texts: list[list[int]],
    eos: int,
    settings: dict,
    generator: torch.Generator,
) -> float:
    """Teacher forcing: cross-entropy of every text token and the closing <|endoftext|> given the
    condition, the context and the text before it (AdamW, one-cycle schedule). Returns the last
    epoch's mean loss."""
    epochs, batch_size = int(settings["epochs"]), int(settings["batch_size"])
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=float(settings["lr"]))
    batches = (len(texts) + batch_size - 1) // batch_size
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, float(settings["lr"]), epochs * batches
    )
    decoder.train()
    for _ in range(epochs):
        total = 0.0
        for chunk in torch.randperm(len(texts), generator=generator).split(batch_size):
            rows = layout(
                [contexts[i] for i in chunk], [texts[i] + [eos] for i in chunk], decoder.prefix, eos
            )
            logits = decoder(conditions[chunk], rows)
            labels = torch.full(rows.mask.shape, -100, dtype=torch.long)
            text_start = decoder.prefix + max(len(contexts[i]) for i in chunk)
            for row, i in enumerate(chunk.tolist()):
                labels[row, text_start : text_start + len(texts[i]) + 1] = torch.tensor(
                    texts[i] + [eos]
                )
            loss = F.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(chunk)
    decoder.eval()
    return total / len(texts)


@torch.no_grad()
def beam_decode(
    decoder: EmbeddingDecoder,
    conditions: torch.Tensor,
    contexts: list[list[int]],
    eos: int,
    beam: int,
    max_tokens: int,
) -> list[list[list[int]]]:
    """Beam search (width ``beam``, score: summed log-probability over length) for every row at
    once; returns, per row, its ``beam`` texts as token ids, best first (without
    <|endoftext|>). ``beam=1`` is greedy decoding."""
    rows_in, vocab = len(conditions), decoder.gpt.config.vocab_size
    conditions = conditions.repeat_interleave(beam, 0)
    contexts = [c for c in contexts for _ in range(beam)]
    sequences = torch.zeros((rows_in * beam, 0), dtype=torch.long)
    scores = torch.zeros(rows_in, beam)
    scores[:, 1:] = -float("inf")  # the beams start identical: expand only the first
    done = torch.zeros(rows_in * beam, dtype=torch.bool)
    lengths = torch.zeros(rows_in * beam)
    for _ in range(max_tokens):
        rows = layout(contexts, sequences.tolist(), decoder.prefix, eos)
        log_probs = F.log_softmax(decoder(conditions, rows)[:, -1].float(), dim=-1)
        # a finished beam only continues with <|endoftext|> at no cost
        log_probs[done] = -float("inf")
        log_probs[done, eos] = 0.0
        total = (scores.view(-1, 1) + log_probs).view(rows_in, beam * vocab)
        scores, picks = total.topk(beam, dim=-1)
        source = (picks // vocab + torch.arange(rows_in).unsqueeze(1) * beam).flatten()
        token = (picks % vocab).flatten()
        sequences = torch.cat([sequences[source], token.unsqueeze(1)], dim=1)
        lengths = lengths[source] + (~done[source]).float()
        done = done[source] | (token == eos)
        if done.all():
            break
    normalised = (scores.flatten() / lengths.clamp_min(1)).view(rows_in, beam)
    order = normalised.argsort(dim=-1, descending=True)
    out = []
    for row in range(rows_in):
        texts = []
        for k in order[row].tolist():
            ids = sequences[row * beam + k].tolist()
            texts.append(ids[: ids.index(eos)] if eos in ids else ids)
        out.append(texts)
    return out


@dataclass
class EmbeddingInverter:
    """A trained decoder from an embedding to text, with the words it writes in."""

    decoder: EmbeddingDecoder
    tokenizer: WordTokenizer

    @property
    def eos(self) -> int:
        return self.tokenizer.token_to_id(EOS)

    @property
    def sep(self) -> int:
        return self.tokenizer.token_to_id(SEP)

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.tokenizer.encode(text) for text in texts]

    def decode(self, ids: list[list[int]]) -> list[str]:
        return [self.tokenizer.decode(row) for row in ids]

    def contexts(self, texts: list[str], max_tokens: int) -> list[list[int]]:
        """Texts as a corrector's contexts: at most ``max_tokens`` tokens, then <sep>."""
        return [ids[:max_tokens] + [self.sep] for ids in self.encode(texts)]

    def invert(self, embeddings: torch.Tensor, beam: int, max_tokens: int) -> list[str]:
        """The best beam-search text for each embedding."""
        best = beam_decode(
            self.decoder, embeddings, [[self.sep]] * len(embeddings), self.eos, beam, max_tokens
        )
        return self.decode([texts[0] for texts in best])


def training_texts(oracle, victims, wanted: int, share: int = 1) -> list[str]:
    """The first ``wanted`` PUBLIC texts, fewer when the query budget is short: an attack that
    spends ``share`` queries per training text keeps at least a third of its budget for the
    rest."""
    remaining = oracle.remaining()
    if remaining is not None:
        wanted = min(wanted, 2 * remaining // (3 * share))
    return public_texts(victims)[:wanted]


def fit_inverter(
    texts: list[str],
    embeddings: torch.Tensor,
    settings: dict,
    generator: torch.Generator,
    tokenizer: WordTokenizer | None = None,
) -> EmbeddingInverter:
    """GEIA's inverter: a decoder trained to write each PUBLIC text from its released embedding,
    in the words of ``tokenizer`` (default: those of ``texts``)."""
    tokenizer = tokenizer or WordTokenizer(texts)
    decoder = EmbeddingDecoder(
        embeddings.shape[1],
        tokenizer.get_vocab_size(),
        settings["decoder"],
        tokenizer.token_to_id(EOS),
    )
    inverter = EmbeddingInverter(decoder, tokenizer)
    fit_decoder(
        decoder,
        embeddings,
        [[inverter.sep]] * len(texts),
        inverter.encode(texts),
        inverter.eos,
        settings["decoder"],
        generator,
    )
    return inverter
