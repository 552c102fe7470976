"""Examples (text segments) -> token ids and labels, in HF's unshifted convention: labels[i] = ids[i] where
token i is trained, else -100. The packer shifts each example by one to make the aligned targets.

All segment texts are encoded in one batched call per 20k segments, so a fast tokenizer runs in Rust over
many threads; the Python side only concatenates lists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example
from ftdist.errors import DataError

IGNORE = -100
BATCH = 20_000


@dataclass
class Tokenized:
    """Tokenized examples plus what was cut or dropped on the way (reported in the data card)."""

    examples: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (ids, labels), int32
    origins: list[str] = field(default_factory=list)
    truncated: int = 0
    dropped: Counter = field(default_factory=Counter)


def encode(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, without special tokens, in batches of 20k.

    A fast tokenizer's Rust backend is called directly (`encode_batch_fast`, no offsets): the transformers
    wrapper converts every encoding to Python dicts first, which costs more than the encoding itself.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fast = getattr(backend, "encode_batch_fast", None) or getattr(backend, "encode_batch", None)
    ids: list[list[int]] = []
    for start in range(0, len(texts), BATCH):
        batch = texts[start : start + BATCH]
        if fast is not None:
            ids += [encoding.ids for encoding in fast(batch, add_special_tokens=False)]
        else:
            ids += tokenizer(batch, add_special_tokens=False)["input_ids"]
    return ids


def tokenize_segments(examples: list[Example], tokenizer, config: DataConfig) -> Tokenized:
    """One (ids, labels) per example; too-long examples follow `data.truncation`."""
    texts = [text for example in examples for text, _ in example.segments]
    encoded = iter(encode(tokenizer, texts))
    eos = tokenizer.eos_token_id if config.add_eos else None
    limit = config.seq_len + 1  # one example fills at most one sequence: seq_len inputs + the last target
    out = Tokenized()
    for example in examples:
        ids: list[int] = []
        labels: list[int] = []
        for (_, trained), piece in zip(example.segments, encoded, strict=False):
            ids += piece
            labels += piece if trained else [IGNORE] * len(piece)
        if eos is not None and example.eos and example.segments[-1][1]:
            ids.append(eos)
            labels.append(eos)
        if not any(label != IGNORE for label in labels[1:]):
            raise DataError(
                f"{example.origin}: this example has no trained tokens after tokenization (its response is empty "
                "or whitespace the tokenizer drops); fix or remove it"
            )
        if len(ids) > limit:
            if config.truncation == "error":
                raise DataError(
                    f"{example.origin}: the example is {len(ids)} tokens, longer than data.seq_len + 1 = {limit}. "
                    "Raise data.seq_len, or set data.truncation to drop (skip such examples) or truncate (cut them)"
                )
            if config.truncation == "drop" or all(label == IGNORE for label in labels[1:limit]):
                out.dropped[f"longer than data.seq_len + 1 = {limit} tokens"] += 1
                continue
            ids, labels = ids[:limit], labels[:limit]
            out.truncated += 1
        out.examples.append((np.asarray(ids, dtype=np.int32), np.asarray(labels, dtype=np.int32)))
        out.origins.append(example.origin)
    return out


def tokenize_documents(examples: list[Example], tokenizer, config: DataConfig) -> Tokenized:
    """Join the documents (EOS between) and cut the stream into chunks of seq_len + 1 tokens.

    Chunk k starts at k * (seq_len - overlap): consecutive chunks share `overlap` tokens (plus the one token
    every next-token split shares), and the shared tokens are trained only in the chunk where they first appear.
    """
    eos = tokenizer.eos_token_id if config.add_eos else None
    pieces = encode(tokenizer, [segment for example in examples for segment, _ in example.segments])
    stream = np.fromiter(
        (token for piece in pieces for token in ([*piece, eos] if eos is not None else piece)), dtype=np.int32
    )
    if len(stream) < 2:
        raise DataError(f"data.path={config.path}: the documents hold {len(stream)} token(s); add text")
    length, overlap = config.seq_len + 1, config.chunk_overlap
    stride = config.seq_len - overlap
    out = Tokenized()
    start, chunk = 0, 0
    while True:
        ids = stream[start : start + length]
        labels = ids.copy()
        if chunk > 0 and overlap:
            labels[1 : overlap + 1] = IGNORE  # trained in the previous chunk already
        if len(ids) >= 2 and (labels[1:] != IGNORE).any():
            out.examples.append((ids, labels))
            out.origins.append(f"{config.path} tokens {start}-{start + len(ids)}")
        if start + length >= len(stream):
            break
        start, chunk = start + stride, chunk + 1
    return out
