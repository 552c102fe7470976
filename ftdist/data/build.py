"""Build a prepared folder in one streaming pass: read -> tokenize (workers) -> window -> split -> pack -> shards.

Nothing here holds the corpus: the recipe yields examples one by one, the workers tokenize batches of them,
and examples are gathered only up to `data.pack_window` at a time. Each window is split into train and val by
a seeded shuffle and packed on its own, and its rows go straight to the shard writers. So memory is bounded
by one window and one shard buffer, whatever the corpus size; a set smaller than one window is split and
packed exactly as a whole (window 0 uses the seed alone, as the whole-set split did).

Everything is written into a staging folder that is published (renamed) only after the last shard is checked
and the index written: a failure anywhere leaves nothing that looks like a cache.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ftdist.config import RunConfig
from ftdist.data.card import CardBuilder
from ftdist.data.card_preference import PreferenceCard
from ftdist.data.packing import pack
from ftdist.data.preference_rows import preference_rows
from ftdist.data.recipes import Example, PreferenceExample, Skipped, load_recipe
from ftdist.data.shards import ShardWriter, write_index
from ftdist.data.tokenize import DocumentChunker, Tokenized
from ftdist.data.workers import batches, tokenized_batches, unpack
from ftdist.distributed.device import cpus_per_process
from ftdist.errors import DataError
from ftdist.staging import staged_folder

PROGRESS_EVERY_S = 10.0
SPLITS = ("train", "val")


def build(config: RunConfig, folder: Path, version: int, tokenizer=None) -> tuple[dict, object]:
    """Write the prepared folder for `config`; return (card, tokenizer)."""
    started = time.perf_counter()
    recipe = load_recipe(config.data.recipe)
    kind = recipe.kind(config.data) if hasattr(recipe, "kind") else recipe.KIND
    skipped: Counter = Counter()
    tokenizer = tokenizer or _tokenizer(config, recipe)
    workers = config.data.workers or cpus_per_process(os.environ)
    card = (PreferenceCard if kind == "preference" else CardBuilder)(config, tokenizer, workers)
    make_rows = preference_rows if kind == "preference" else functools.partial(pack, packing=config.data.packing)
    examples = _tokenized(_examples(recipe, config, tokenizer, skipped), tokenizer, config, kind, workers, card)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    intact = "The data files themselves are untouched; nothing was cached"
    # The folder's name is the fingerprint of its content: a copy another process published first wins.
    with staged_folder(folder, intact=intact, replace=False) as staging:
        writers: dict[str, ShardWriter] = {}  # opened with the first rows, whose keys they take
        progress = Progress(started)
        for number, window in enumerate(windows(examples, config.data.pack_window)):
            train, val = split(len(window), config.data.val_fraction, config.seed, number)
            card.add_examples(window, train)
            for name, index in (("train", train), ("val", val)):
                if len(index):
                    rows = make_rows([window[i] for i in index], config.data.seq_len, pad_id)
                    if not writers:
                        keys = tuple(rows)
                        writers = {part: ShardWriter(staging, part, config.data.seq_len, keys) for part in SPLITS}
                    writers[name].add(rows)
                    card.add_rows(name, rows)
            progress.show(card)
        if card.examples < 2:
            if card.examples == 0 and not sum(card.dropped.values()):
                reasons = "; ".join(f"{count} {reason}" for reason, count in skipped.items()) or "no records"
                raise DataError(
                    f"data.path={config.data.path}: recipe {config.data.recipe} found no examples ({reasons})"
                )
            raise DataError(too_few_message(config, card.examples, card.dropped))
        index = {name: writer.close() for name, writer in writers.items()}
        shards = {name: len(entry["shards"]) for name, entry in index.items()}
        result = card.finish(skipped, shards, time.perf_counter() - started)
        tokenizer.save_pretrained(staging / "tokenizer")
        (staging / "card.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
        write_index(staging, config.data.seq_len, index, version)  # last: an index means a whole folder
    progress.done(card)
    return result, tokenizer


def _tokenizer(config: RunConfig, recipe):
    """The model's tokenizer, or the char tokenizer over every character of the examples."""
    from ftdist.models import build_tokenizer

    if config.model.tokenizer_source != "char":
        return build_tokenizer(config)
    return build_tokenizer(config, char_vocabulary(config))


def char_vocabulary(config: RunConfig) -> str:
    """Every character the recipe's examples use, sorted: one extra pass that holds only the set of characters."""
    seen: set[str] = set()
    for item in load_recipe(config.data.recipe).examples(config.data, None):
        if isinstance(item, Example | PreferenceExample):
            for segment, _ in item.segments:
                seen.update(segment)
    return "".join(sorted(seen))


def _examples(recipe, config: RunConfig, tokenizer, skipped: Counter) -> Iterator[Example]:
    for item in recipe.examples(config.data, tokenizer):
        if isinstance(item, Skipped):
            skipped[item.reason] += 1
        else:
            yield item


def _tokenized(examples, tokenizer, config: RunConfig, kind: str, workers: int, card: CardBuilder) -> Iterator:
    """(ids, labels) of each example, in order; cut and dropped counts go to the card as they come."""
    results = tokenized_batches(batches(examples), tokenizer, config.data, kind, workers)
    if kind == "documents":
        chunker = DocumentChunker(config.data)
        seen = False
        for stream in results:
            seen = True
            yield from chunker.feed(stream).examples
        if seen:
            yield from chunker.finish().examples
        return
    for result in results:
        part: Tokenized = unpack(result)
        card.truncated += part.truncated
        card.dropped.update(part.dropped)
        yield from part.examples


def windows(examples: Iterator, size: int) -> Iterator[list]:
    window: list = []
    for example in examples:
        window.append(example)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def split(count: int, fraction: float, seed: int, window: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of a window's example indices, cut into (train, val); both keep at least one example
    of a window of two or more."""
    rng = np.random.default_rng(seed if window == 0 else [seed, window])
    order = rng.permutation(count)
    n_val = min(count - 1, max(1, round(count * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def too_few_message(config: RunConfig, left: int, dropped: Counter) -> str:
    """Why fewer than 2 examples are left: drops are counted with their reason and the setting that caused them."""
    count = sum(dropped.values())
    message = f"data.path={config.data.path}: only {left} example(s) left after tokenization"
    if count:
        reasons = "; ".join(f"{n} {reason}" for reason, n in dropped.items())
        return (
            f"{message}: {count} of {left + count} example(s) were dropped under data.truncation: "
            f"{config.data.truncation} ({reasons}). A train and a val split need at least 2. Raise data.seq_len, "
            "or set data.truncation=truncate to cut long examples instead of dropping them"
        )
    return f"{message}; a train and a val split need at least 2. Add data, or lower data.seq_len for the text recipe"


class Progress:
    """One line on stderr every 10 s while preparing (examples, tokens, rate), and one at the end."""

    def __init__(self, started: float) -> None:
        self.started, self.last = started, started

    def show(self, card: CardBuilder) -> None:
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"prepare: {self._line(card, now)}", file=sys.stderr, flush=True)

    def done(self, card: CardBuilder) -> None:
        if self.last != self.started:  # only runs long enough to have shown progress say they finished
            print(f"prepare: done, {self._line(card, time.perf_counter())}", file=sys.stderr, flush=True)

    def _line(self, card: CardBuilder, now: float) -> str:
        seconds = now - self.started
        return (
            f"{card.examples:,} examples, {card.tokens:,} tokens in {card.windows} window(s), "
            f"{seconds:.0f} s, {card.tokens / max(seconds, 1e-9):,.0f} tokens/s"
        )
