"""Tokenize and pack once, cache on disk, reuse: the work behind `ftdist prepare` and every non-stream run.

The cache folder is `<data.cache_dir>/<recipe>-<fingerprint>`, where the fingerprint hashes the data files'
bytes, the tokenizer's files and every `data:` setting that changes the result. A folder is written under a
temporary name and renamed when complete, so a crash never leaves a half cache that looks whole. Arrays are
safetensors (no pickle); the tokenizer is saved beside them, so training loads exactly the one that encoded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from ftdist.config import RunConfig
from ftdist.data.card import build_card
from ftdist.data.packing import pack
from ftdist.data.recipes import Example, Skipped, load_recipe
from ftdist.data.sources import BUILTIN_PREFIX, resolve_data_path
from ftdist.data.tokenize import Tokenized, tokenize_documents, tokenize_segments
from ftdist.errors import DataError
from ftdist.staging import staged_folder

FORMAT_VERSION = 1  # bump when the cached layout or the tokenization rules change
TOKENIZER_FILES = ("tokenizer", "vocab", "merges", "special_tokens", "chat_template", "spiece", "added_tokens")


@dataclass
class Prepared:
    folder: Path
    card: dict
    splits: dict[str, dict[str, np.ndarray]]  # split -> input_ids / labels / position_ids, (N, seq_len) int32
    tokenizer: object
    cache_hit: bool


def fingerprint(config: RunConfig) -> str:
    """A hash of the data bytes, the tokenizer files and the settings that shape the prepared arrays."""
    digest = hashlib.sha256(f"ftdist-data-v{FORMAT_VERSION}".encode())
    settings = config.data.model_dump(exclude={"cache_dir"})
    digest.update(json.dumps([settings, config.seed, config.model.tokenizer_source], sort_keys=True).encode())
    for path in _source_files(config.data.path):
        digest.update(str(path.name).encode())
        digest.update(_file_hash(path))
    source = config.model.tokenizer_source
    if source != "char" and Path(source).expanduser().is_dir():
        for path in sorted(Path(source).expanduser().iterdir()):
            if path.is_file() and path.name.startswith(TOKENIZER_FILES):
                digest.update(path.name.encode() + _file_hash(path))
    return digest.hexdigest()[:16]


def cache_folder(config: RunConfig) -> Path:
    return Path(config.data.cache_dir).expanduser() / f"{config.data.recipe}-{fingerprint(config)}"


def prepare(config: RunConfig, build: bool = True) -> Prepared:
    """Load the cached arrays for `config`, building them first if they are missing (and `build` is set)."""
    folder = cache_folder(config)
    if (folder / "card.json").exists():
        return _load(folder, cache_hit=True)
    if not build:
        raise DataError(
            f"the prepared data {folder} is missing; rank 0 should have written it. Run `ftdist prepare` first, "
            "or make data.cache_dir a folder every rank can see"
        )
    started = time.perf_counter()
    tokenizer, tokenized, skipped = _tokenize(config)
    if len(tokenized.examples) < 2:
        raise DataError(_too_few_message(config, tokenized))
    train, val = _split(len(tokenized.examples), config.data.val_fraction, config.seed)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    splits = {
        name: pack([tokenized.examples[i] for i in index], config.data.seq_len, pad_id, config.data.packing)
        for name, index in (("train", train), ("val", val))
    }
    card = build_card(config, tokenizer, tokenized, skipped, splits, train, time.perf_counter() - started)
    _save(folder, splits, tokenizer, card)
    return Prepared(folder, card, splits, tokenizer, cache_hit=False)


def _tokenize(config: RunConfig) -> tuple[object, Tokenized, Counter]:
    from ftdist.models import build_tokenizer

    recipe = load_recipe(config.data.recipe)
    kind = recipe.kind(config.data) if hasattr(recipe, "kind") else recipe.KIND
    char = config.model.tokenizer_source == "char"
    tokenizer = None if char else build_tokenizer(config)
    examples: list[Example] = []
    skipped: Counter = Counter()
    for item in recipe.examples(config.data, tokenizer):
        if isinstance(item, Skipped):
            skipped[item.reason] += 1
        else:
            examples.append(item)
    if not examples:
        reasons = "; ".join(f"{count} {reason}" for reason, count in skipped.items()) or "no records"
        raise DataError(f"data.path={config.data.path}: recipe {config.data.recipe} found no examples ({reasons})")
    if char:  # the character vocabulary is every character the examples (and the card's markers) use
        text = "".join(segment for example in examples for segment, _ in example.segments)
        tokenizer = build_tokenizer(config, text)
    tokenize = tokenize_documents if kind == "documents" else tokenize_segments
    return tokenizer, tokenize(examples, tokenizer, config.data), skipped


def _too_few_message(config: RunConfig, tokenized: Tokenized) -> str:
    """Why fewer than 2 examples are left: drops are counted with their reason and the setting that caused them."""
    left = len(tokenized.examples)
    dropped = sum(tokenized.dropped.values())
    message = f"data.path={config.data.path}: only {left} example(s) left after tokenization"
    if dropped:
        reasons = "; ".join(f"{count} {reason}" for reason, count in tokenized.dropped.items())
        return (
            f"{message}: {dropped} of {left + dropped} example(s) were dropped under data.truncation: "
            f"{config.data.truncation} ({reasons}). A train and a val split need at least 2. Raise data.seq_len, "
            "or set data.truncation=truncate to cut long examples instead of dropping them"
        )
    return f"{message}; a train and a val split need at least 2. Add data, or lower data.seq_len for the text recipe"


def _split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded shuffle of example indices, cut into (train, val); both keep at least one example."""
    order = np.random.default_rng(seed).permutation(count)
    n_val = min(count - 1, max(1, round(count * fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _save(folder: Path, splits: dict, tokenizer, card: dict) -> None:
    intact = "The data files themselves are untouched; nothing was cached"
    # The folder's name is the fingerprint of its content: a copy another process published first wins.
    with staged_folder(folder, intact=intact, replace=False) as staging:
        save_file(
            {f"{split}.{key}": array for split, arrays in splits.items() for key, array in arrays.items()},
            str(staging / "data.safetensors"),
        )
        tokenizer.save_pretrained(staging / "tokenizer")
        (staging / "card.json").write_text(json.dumps(card, indent=1, ensure_ascii=False))


def _load(folder: Path, cache_hit: bool) -> Prepared:
    from transformers import AutoTokenizer

    arrays = load_file(str(folder / "data.safetensors"))
    splits: dict[str, dict[str, np.ndarray]] = {}
    for key, array in arrays.items():
        split, name = key.split(".", 1)
        splits.setdefault(split, {})[name] = array
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    card = json.loads((folder / "card.json").read_text())
    return Prepared(folder, card, splits, tokenizer, cache_hit)


def _source_files(spec: str) -> list[Path]:
    if not spec.startswith(BUILTIN_PREFIX) and not Path(spec).expanduser().exists():
        return []  # a hub id: its name (in the settings) is the fingerprint
    path = resolve_data_path(spec)
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def _file_hash(path: Path) -> bytes:
    stat = path.stat()
    return _cached_file_hash(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _cached_file_hash(path: str, size: int, mtime_ns: int) -> bytes:
    """Hashed once per process per file version: the fingerprint is taken by prepare and again by checkpoints."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()
