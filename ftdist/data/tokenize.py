"""Examples (text segments) -> token ids and labels, in HF's unshifted convention: labels[i] = ids[i] where
token i is trained, else -100. The packer shifts each example by one to make the aligned targets.

The functions here work on one batch of examples; `ftdist.data.workers` runs them over many batches in worker
processes, and `DocumentChunker` carries a document stream across batches, so nothing needs the whole corpus.
A batch's segment texts are encoded in batched calls to the Rust backend; the Python side only concatenates.
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
    return out


def encode_documents(examples: list[Example], tokenizer, config: DataConfig) -> np.ndarray:
    """The documents' tokens joined into one int32 stream, EOS after each one that ends a document.

    A recipe may hand a long document over in pieces cut after a line end (`Example.eos=False` on all but the
    last), so that no piece holds a whole large file in memory and the pieces tokenize in parallel."""
    eos = tokenizer.eos_token_id if config.add_eos else None
    pieces = encode(tokenizer, [segment for example in examples for segment, _ in example.segments])
    ends = [example.eos for example in examples for _ in example.segments]
    parts = [
        np.asarray([*piece, eos] if eos is not None and ended else piece, dtype=np.int32)
        for piece, ended in zip(pieces, ends, strict=True)
    ]
    return np.concatenate(parts) if parts else np.empty(0, np.int32)


class DocumentChunker:
    """Cut a token stream, fed in parts, into chunks of seq_len + 1 tokens (see `tokenize_documents`).

    Only the tokens the next chunk still needs are kept between parts, so memory does not grow with the stream."""

    def __init__(self, config: DataConfig) -> None:
        self.config = config
        self.length, self.overlap = config.seq_len + 1, config.chunk_overlap
        self.stride = config.seq_len - self.overlap
        self.buffer = np.empty(0, np.int32)
        self.offset = 0  # stream position of buffer[0]
        self.chunk = 0

    def feed(self, tokens: np.ndarray) -> Tokenized:
        """Chunks that lie wholly inside the stream so far and are not its last."""
        self.buffer = np.concatenate([self.buffer, tokens])
        out = Tokenized()
        while len(self.buffer) > self.length:  # more tokens follow this chunk, so it is not the last
            self._emit(out)
            self.buffer, self.offset = self.buffer[self.stride :], self.offset + self.stride
        return out

    def finish(self, required: bool = True) -> Tokenized:
        """The last chunk (shorter than seq_len + 1 when the stream ends inside it). A stream of under 2 tokens
        is an error when `required` (the whole set), else nothing (one unit of a larger set)."""
        if self.offset + len(self.buffer) < 2:
            if not required:
                return Tokenized()
            raise DataError(
                f"data.path={self.config.path}: the documents hold {self.offset + len(self.buffer)} token(s); add text"
            )
        out = Tokenized()
        self._emit(out)
        return out

    def _emit(self, out: Tokenized) -> None:
        ids = self.buffer[: self.length].copy()
        labels = ids.copy()
        if self.chunk > 0 and self.overlap:
            labels[1 : self.overlap + 1] = IGNORE  # trained in the previous chunk already
        if len(ids) >= 2 and (labels[1:] != IGNORE).any():
            out.examples.append((ids, labels))
        self.chunk += 1


def tokenize_documents(examples: list[Example], tokenizer, config: DataConfig) -> Tokenized:
    """Join the documents (EOS between) and cut the stream into chunks of seq_len + 1 tokens.

    Chunk k starts at k * (seq_len - overlap): consecutive chunks share `overlap` tokens (plus the one token
    every next-token split shares), and the shared tokens are trained only in the chunk where they first appear.
    """
    chunker = DocumentChunker(config)
    out = chunker.feed(encode_documents(examples, tokenizer, config))
    last = chunker.finish()
    out.examples += last.examples
    return out
