"""Tokenize and pack once, cache on disk, reuse: the work behind `ftdist prepare` and every non-stream run.

The cache folder is `<data.cache_dir>/<recipe>-<fingerprint>`, where the fingerprint hashes the data files'
bytes, the tokenizer's files and every `data:` setting that changes the result. A folder is written under a
temporary name and renamed when complete, so a crash never leaves a half cache that looks whole. Rows are
memory-mapped NumPy shards (`ftdist.data.shards`, no pickle), built in one streaming pass
(`ftdist.data.build`); the tokenizer is saved beside them, so training loads exactly the one that encoded.
A cache of an older layout has another fingerprint (the format version is part of it), so it is simply not
found and the data is prepared again.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ftdist.config import RunConfig
from ftdist.data.recipes import load_recipe
from ftdist.data.shards import ShardedSplit, open_split
from ftdist.data.tokenize import Tokenized
from ftdist.data.units import input_files, unit_bytes
from ftdist.distributed.env import DistEnv
from ftdist.errors import DataError

FORMAT_VERSION = 2  # bump when the cached layout or the tokenization rules change (2: memory-mapped shards)
TOKENIZER_FILES = ("tokenizer", "vocab", "merges", "special_tokens", "chat_template", "spiece", "added_tokens")


@dataclass
class Prepared:
    folder: Path
    card: dict
    splits: dict[str, ShardedSplit]  # split -> input_ids / labels / position_ids, (N, seq_len) int32, mapped
    tokenizer: object
    cache_hit: bool


def fingerprint(config: RunConfig) -> str:
    """A hash of the data bytes, the tokenizer files and the settings that shape the prepared arrays."""
    digest = hashlib.sha256(f"ftdist-data-v{FORMAT_VERSION}".encode())
    settings = config.data.model_dump(exclude={"cache_dir", "workers", "unit_mb"})
    digest.update(json.dumps([settings, config.seed, config.model.tokenizer_source], sort_keys=True).encode())
    specs = [source.path for source in config.data.sources] if config.data.sources else [config.data.path]
    size = 0
    for spec in specs:
        for path in input_files(spec):
            digest.update(str(path.name).encode())
            digest.update(_file_hash(path))
            size += path.stat().st_size
    # The unit size shapes the rows only of a set larger than one unit (`ftdist.data.units`): a smaller set is
    # one stream, exactly as before units existed, so its fingerprint (and its cache, and the checkpoints that
    # recorded it) stays what it was.
    if size > unit_bytes(config.data):
        digest.update(f"unit_mb={config.data.unit_mb}".encode())
    source = config.model.tokenizer_source
    if source != "char" and Path(source).expanduser().is_dir():
        for path in sorted(Path(source).expanduser().iterdir()):
            if path.is_file() and path.name.startswith(TOKENIZER_FILES):
                digest.update(path.name.encode() + _file_hash(path))
    return digest.hexdigest()[:16]


def cache_folder(config: RunConfig) -> Path:
    return Path(config.data.cache_dir).expanduser() / f"{config.data.recipe}-{fingerprint(config)}"


def prepare(config: RunConfig, build: bool = True, tokenizer=None, env: DistEnv | None = None) -> Prepared:
    """Open the cached shards for `config`, building them first if they are missing (and `build` is set).

    `tokenizer`: one to use instead of the model's (the mixture's shared char vocabulary). `env`: this process's
    place among several ranks that build the folder together (`ftdist prepare` under torchrun, srun or Ray);
    None (or one rank): this process builds it alone."""
    folder = cache_folder(config)
    if (folder / "card.json").exists():
        return _load(folder, cache_hit=True)
    if not build:
        raise DataError(
            f"the prepared data {folder} is missing; rank 0 should have written it. Run `ftdist prepare` first, "
            "or make data.cache_dir a folder every rank can see"
        )
    from ftdist.data.build import build as build_folder

    build_folder(config, folder, FORMAT_VERSION, tokenizer, env)
    return _load(folder, cache_hit=False)


def _tokenize(config: RunConfig) -> tuple[object, Tokenized, Counter]:
    """(tokenizer, every tokenized example, skipped counts) in memory, without the cache: for inspecting a
    recipe on a small set (the tests), not for preparing a corpus."""
    from ftdist.data.build import _examples, _tokenized, _tokenizer
    from ftdist.data.card import CardBuilder

    recipe = load_recipe(config.data.recipe)
    kind = recipe.kind(config.data) if hasattr(recipe, "kind") else recipe.KIND
    skipped: Counter = Counter()
    tokenizer = _tokenizer(config, recipe)
    card = CardBuilder(config, tokenizer, 1)
    examples = list(_tokenized(_examples(recipe, config, tokenizer, skipped), tokenizer, config, kind, 1, card))
    if not examples and not card.dropped:
        reasons = "; ".join(f"{count} {reason}" for reason, count in skipped.items()) or "no records"
        raise DataError(f"data.path={config.data.path}: recipe {config.data.recipe} found no examples ({reasons})")
    return tokenizer, Tokenized(examples, card.truncated, card.dropped), skipped


def _load(folder: Path, cache_hit: bool) -> Prepared:
    from transformers import AutoTokenizer

    splits = {name: open_split(folder, name) for name in ("train", "val")}
    tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"))
    card = json.loads((folder / "card.json").read_text())
    return Prepared(folder, card, splits, tokenizer, cache_hit)


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
