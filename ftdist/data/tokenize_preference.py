"""Preference records -> token ids and labels: one item per record, holding all of its sequences.

A pair becomes two sequences (prompt + chosen, prompt + rejected); an unpaired (KTO) example becomes its own
sequence and the KL sequence KTO estimates its reference point from: the prompt of example k with the
completion of example k-1 of the same tokenizer batch (wrapping round, so a batch of one pairs an example with
itself). Labels follow `tokenize_segments`' convention (unshifted; -100 on the prompt), so each sequence
becomes a row exactly as `pack(..., packing=False)` makes one.

Too long (prompt + response > seq_len + 1 tokens) follows `data.truncation` for the record as a whole:
`error` stops, `drop` drops the whole record, `truncate` cuts the prompt from its left first (keeping at least
its last token; a pair's two sequences keep the same prompt tokens) and then each response's tail. A KL
sequence is derived, not data: it is always cut so, never an error or a drop.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import PreferenceExample
from ftdist.data.tokenize import IGNORE, Tokenized, encode
from ftdist.errors import DataError

Sequence = tuple[list[int], list[int]]  # (ids, labels), unshifted


@dataclass
class TokenizedPreference:
    """One record's sequences as unshifted (ids, labels) int32 arrays, keyed by the prefix of their row keys:
    `chosen` and `rejected` for a pair; `` (the example itself) and `kl` for an unpaired example."""

    sequences: dict[str, tuple[np.ndarray, np.ndarray]]
    prompt_tokens: int  # after truncation
    response_tokens: tuple[int, ...]  # (chosen, rejected) or (completion,), after truncation
    desirable: int | None = None


def tokenize_preference(examples: list[PreferenceExample], tokenizer, config: DataConfig) -> Tokenized:
    """One `TokenizedPreference` per record that fits (or is cut to fit) `data.seq_len`."""
    texts = [text for example in examples for text in _texts(example)]
    encoded = iter(encode(tokenizer, texts))
    eos = tokenizer.eos_token_id if config.add_eos else None
    parts = []  # per example: (prompt ids, [response (ids, labels)])
    for example in examples:
        prompt = next(encoded)
        ends = eos if example.eos else None
        responses = [_response(response, encoded, ends, example) for response in example.responses]
        parts.append((prompt, responses))
    limit = config.seq_len + 1  # one sequence: seq_len inputs + the last target
    out = Tokenized()
    for k, (example, (prompt, responses)) in enumerate(zip(examples, parts, strict=True)):
        fitted = _fit(prompt, responses, limit, config.truncation, example.origin)
        if fitted is None:
            out.dropped[f"longer than data.seq_len + 1 = {limit} tokens"] += 1
            continue
        (kept, cut_responses), truncated = fitted
        out.truncated += truncated
        names = ("chosen", "rejected") if example.desirable is None else ("",)
        sequences = {name: _sequence(kept, response) for name, response in zip(names, cut_responses, strict=True)}
        if example.desirable is not None:
            previous = parts[k - 1][1][0]  # k - 1 wraps round to the batch's last example
            kl = _fit(prompt, [previous], limit, "truncate", example.origin) or ((prompt[-1:], [previous]), 0)
            sequences["kl"] = _sequence(kl[0][0], kl[0][1][0])
        lengths = tuple(len(ids) for ids, _ in cut_responses)
        out.examples.append(TokenizedPreference(sequences, len(kept), lengths, example.desirable))
    return out


def _texts(example: PreferenceExample) -> list[str]:
    return [example.prompt, *(text for response in example.responses for text, _ in response)]


def _response(segments: list[tuple[str, bool]], encoded, eos: int | None, example: PreferenceExample) -> Sequence:
    ids: list[int] = []
    labels: list[int] = []
    for (_, trained), piece in zip(segments, encoded, strict=False):  # stops at the last segment
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    if eos is not None:
        ids.append(eos)
        labels.append(eos)
    if all(label == IGNORE for label in labels):
        raise DataError(
            f"{example.origin}: a response has no trained tokens after tokenization (it is empty or whitespace "
            "the tokenizer drops); fix or remove this row"
        )
    return ids, labels


def _fit(prompt: list[int], responses: list[Sequence], limit: int, mode: str, origin: str):
    """((prompt, responses), 1 if cut else 0) within `limit` tokens per sequence, or None to drop the record."""
    longest = max(len(ids) for ids, _ in responses)
    if len(prompt) + longest <= limit:
        return (prompt, responses), 0
    if mode == "error":
        raise DataError(
            f"{origin}: the prompt ({len(prompt)} tokens) and its longest response ({longest}) make "
            f"{len(prompt) + longest} tokens, longer than data.seq_len + 1 = {limit}. Raise data.seq_len, or set "
            "data.truncation to drop (skip such records) or truncate (cut the prompt's start, then the response's end)"
        )
    if mode == "drop":
        return None
    keep = min(len(prompt), max(1, limit - longest))  # the prompt's last tokens, at least one
    prompt = prompt[len(prompt) - keep :]
    room = limit - len(prompt)
    responses = [(ids[:room], labels[:room]) for ids, labels in responses]
    if any(all(label == IGNORE for label in labels) for _, labels in responses):
        return None
    return (prompt, responses), 1


def _sequence(prompt: list[int], response: Sequence) -> tuple[np.ndarray, np.ndarray]:
    ids, labels = response
    return np.asarray(prompt + ids, dtype=np.int32), np.asarray([IGNORE] * len(prompt) + labels, dtype=np.int32)
