"""Build a prepared folder in one streaming pass: read -> tokenize (workers) -> window -> split -> pack -> shards.

Nothing here holds the corpus: the recipe yields examples one by one, the workers tokenize batches of them,
and examples are gathered only up to `data.pack_window` at a time. Each window is split into train and val by
a seeded shuffle and packed on its own, and its rows go straight to the shard writers. So memory is bounded
by one window and one shard buffer, whatever the corpus size; a set smaller than one window is split and
packed exactly as a whole (window 0 uses the seed alone, as the whole-set split did).

The input is cut into units (`ftdist.data.units`, `data.unit_mb`), and each unit is such a pass of its own,
into shards named after it; the index lists the units' shards in unit order and the card adds their numbers
up. A set smaller than one unit is one pass, exactly as before units existed. One process builds every unit
in order; several ranks share them out (`ftdist.data.build_ranks`), with the same result.

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
from ftdist.data.shards import ShardWriter, check_crcs, write_index
from ftdist.data.tokenize import DocumentChunker, Tokenized
from ftdist.data.units import Unit, plan_units, reading
from ftdist.data.workers import batches, tokenized_batches, unpack
from ftdist.distributed.device import cpus_per_process
from ftdist.distributed.env import DistEnv
from ftdist.errors import DataError
from ftdist.staging import staged_folder

PROGRESS_EVERY_S = 10.0
SPLITS = ("train", "val")
INTACT = "The data files themselves are untouched; nothing was cached"


def build(config: RunConfig, folder: Path, version: int, tokenizer=None, env: DistEnv | None = None) -> tuple:
    """Write the prepared folder for `config`; return (card, tokenizer). With `env` of several ranks, this
    rank builds its share of the units and rank 0 seals the folder (`ftdist.data.build_ranks`)."""
    if env is not None and env.world_size > 1:
        from ftdist.data.build_ranks import build_on_ranks

        return build_on_ranks(config, tokenizer, folder, version, env)
    builder = Builder(config, tokenizer)
    # The folder's name is the fingerprint of its content: a copy another process published first wins.
    with staged_folder(folder, intact=INTACT, replace=False) as staging:
        records = [builder.unit(unit, staging) for unit in builder.plan]
        result = builder.seal(records, staging, version, ranks=1)
    builder.progress.done(builder.total)
    return result, builder.tokenizer


class Builder:
    """One prepare: the recipe, the tokenizer and the units; builds a unit's shards, and seals the folder."""

    def __init__(self, config: RunConfig, tokenizer=None) -> None:
        self.config, self.started = config, time.perf_counter()
        self.recipe = load_recipe(config.data.recipe)
        self.kind = self.recipe.kind(config.data) if hasattr(self.recipe, "kind") else self.recipe.KIND
        self.tokenizer = tokenizer or _tokenizer(config, self.recipe)
        self.workers = config.data.workers or cpus_per_process(os.environ)
        self.card_type = PreferenceCard if self.kind == "preference" else CardBuilder
        self.total = self.card_type(config, self.tokenizer, self.workers)  # the units' numbers, added up
        self.plan = plan_units(config.data)
        self.progress = Progress(self.started)

    def unit(self, unit: Unit, staging: Path) -> dict:
        """Read, tokenize, window, split and pack one unit into its own shards in `staging`; return its record
        (the shards' index entries and the unit's card numbers, as JSON)."""
        config, tokenizer, kind = self.config, self.tokenizer, self.kind
        skipped: Counter = Counter()
        card = self.card_type(config, tokenizer, self.workers)
        make_rows = preference_rows if kind == "preference" else functools.partial(pack, packing=config.data.packing)
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
        tag = f"-u{unit.number:05d}" if unit.number else ""  # unit 0's shards keep the names of a one-unit set
        writers: dict[str, ShardWriter] = {}  # opened with the first rows, whose keys they take
        with reading(unit if len(self.plan) > 1 else None):
            found = _examples(self.recipe, config, tokenizer, skipped)
            examples = _tokenized(found, tokenizer, config, kind, self.workers, card, len(self.plan) == 1)
            for number, window in enumerate(windows(examples, config.data.pack_window)):
                train, val = split(len(window), config.data.val_fraction, config.seed, number, unit.number)
                card.add_examples(window, train)
                for name, index in (("train", train), ("val", val)):
                    if len(index):
                        rows = make_rows([window[i] for i in index], config.data.seq_len, pad_id)
                        if not writers:
                            keys = tuple(rows)
                            writers = {
                                part: ShardWriter(staging, part, config.data.seq_len, keys, tag) for part in SPLITS
                            }
                        writers[name].add(rows)
                        card.add_rows(name, rows)
                self.progress.show(card)
        self.progress.unit_done(card)
        index = {name: writer.close() for name, writer in writers.items()}
        return {"unit": unit.number, "parts": unit.describe(), "index": index, "card": card.state(), "skipped": skipped}

    def seal(self, records: list[dict], staging: Path, version: int, ranks: int, verify: bool = False) -> dict:
        """Add up the units' records (in unit order), check the total, and write the tokenizer, the card and, last,
        the index that makes `staging` a whole folder. `verify`: re-read every shard against its CRC32 first
        (shards other processes wrote; a shard this process wrote was checked when its writer closed)."""
        skipped: Counter = Counter()
        for record in records:
            self.total.absorb(record["card"])
            skipped.update(record["skipped"])
        card, config = self.total, self.config
        if card.examples < 2:
            if card.examples == 0 and not sum(card.dropped.values()):
                reasons = "; ".join(f"{count} {reason}" for reason, count in skipped.items()) or "no records"
                raise DataError(
                    f"data.path={config.data.path}: recipe {config.data.recipe} found no examples ({reasons})"
                )
            raise DataError(too_few_message(config, card.examples, card.dropped))
        index = merged_index([record["index"] for record in records])
        for entry in index.values() if verify else ():
            check_crcs(staging, entry["shards"])
        shards = {name: len(entry["shards"]) for name, entry in index.items()}
        result = card.finish(skipped, shards, time.perf_counter() - self.started)
        result["units"], result["ranks"] = len(self.plan), ranks
        self.tokenizer.save_pretrained(staging / "tokenizer")
        (staging / "card.json").write_text(json.dumps(result, indent=1, ensure_ascii=False))
        write_index(staging, config.data.seq_len, index, version)  # last: an index means a whole folder
        return result


def merged_index(indexes: list[dict]) -> dict:
    """The splits' index entries of several units as one: their shards one after another, in unit order."""
    merged = {}
    for name in SPLITS:
        entries = [index[name] for index in indexes if name in index]
        if entries:
            shards = [shard for entry in entries for shard in entry["shards"]]
            rows = sum(entry["rows"] for entry in entries)
            merged[name] = {"rows": rows, "shards": shards, "keys": entries[0]["keys"]}
    return merged


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


def _tokenized(
    examples, tokenizer, config: RunConfig, kind: str, workers: int, card: CardBuilder, whole: bool = True
) -> Iterator:
    """(ids, labels) of each example, in order; cut and dropped counts go to the card as they come. `whole`:
    these are the whole set's examples (not one unit's of several), so a document stream must hold 2 tokens."""
    results = tokenized_batches(batches(examples), tokenizer, config.data, kind, workers)
    if kind == "documents":
        chunker = DocumentChunker(config.data)
        seen = False
        for stream in results:
            seen = True
            yield from chunker.feed(stream).examples
        if seen:
            yield from chunker.finish(required=whole).examples
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


def split(count: int, fraction: float, seed: int, window: int = 0, unit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of a window's example indices, cut into (train, val); both keep at least one example
    of a window of two or more.

    Unit 0 seeds as a one-unit set always did (window 0: the seed alone, then [seed, window]); unit u > 0 seeds
    with [seed, window, u]. NumPy pads a seed list with zeros, so [seed, window, 0] would equal [seed, window]:
    the unit goes last, where it is never 0, and no two (unit, window) share a shuffle."""
    rng = np.random.default_rng(seed if window == unit == 0 else [seed, window, unit] if unit else [seed, window])
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

    def __init__(self, started: float, label: str = "prepare") -> None:
        self.started, self.last, self.label = started, started, label
        self.before = (0, 0, 0)  # examples, tokens, windows of the units this process finished

    def show(self, card: CardBuilder) -> None:
        now = time.perf_counter()
        if now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            print(f"{self.label}: {self._line(*self._with(card), now)}", file=sys.stderr, flush=True)

    def unit_done(self, card: CardBuilder) -> None:
        self.before = self._with(card)

    def done(self, card: CardBuilder) -> None:
        if self.last != self.started:  # only runs long enough to have shown progress say they finished
            line = self._line(card.examples, card.tokens, card.windows, time.perf_counter())
            print(f"{self.label}: done, {line}", file=sys.stderr, flush=True)

    def _with(self, card: CardBuilder) -> tuple[int, int, int]:
        examples, tokens, windows = self.before
        return examples + card.examples, tokens + card.tokens, windows + card.windows

    def _line(self, examples: int, tokens: int, windows: int, now: float) -> str:
        seconds = now - self.started
        return (
            f"{examples:,} examples, {tokens:,} tokens in {windows} window(s), "
            f"{seconds:.0f} s, {tokens / max(seconds, 1e-9):,.0f} tokens/s"
        )
