"""Turn `data:` into a tokenizer and a batch source the trainer can draw from.

A batch source has `next_batch()`, `eval_batches(split, count, step)`, `tokens_per_batch`, and
`state_dict()` / `load_state_dict()` (its position, for exact resume). Batches hold `input_ids` and
`labels` aligned position by position (already shifted; -100 marks tokens that do not count); any other
key (`position_ids`) is passed to the model. `row_kind` says which: "tokens" for those packed rows, "pairs" or
"unpaired" for the preference recipe's rows (`PreferenceData`: each sequence's keys under a prefix, plus
`index` and, unpaired, `desirable`); `rows(split)` counts a split's rows.

`stream` reads its text file directly. Every other recipe goes through `ftdist.data.prepare`: when the cache
is missing, every rank builds its share of the units into it and rank 0 seals it (`ftdist.data.build_ranks`),
then all memory-map the same shards, so no rank redoes another's work or copies the corpus. Where the ranks do
not share `data.cache_dir`, rank 0 prepares alone and the others read their own copy (or stop with the fix).
`data.sources` prepares each source so, and mixes their rows by weight (`ftdist.data.mixture`).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.data.mixture import MixtureData
from ftdist.data.preference_batches import PreferenceData
from ftdist.data.prepared import PreparedData
from ftdist.data.sources import read_text
from ftdist.data.stream import TokenStreamData
from ftdist.distributed.collectives import all_agree, any_rank, joined, on_rank0, rank
from ftdist.distributed.env import DistEnv
from ftdist.errors import DataError
from ftdist.models import build_tokenizer

__all__ = ["MixtureData", "PreferenceData", "PreparedData", "TokenStreamData", "build_data"]


def build_data(config: RunConfig, env: DistEnv) -> tuple[PreTrainedTokenizerBase, TokenStreamData | PreparedData]:
    """Read the data, build or load the tokenizer, and return (tokenizer, batch source)."""
    if config.data.recipe != "stream":
        return _prepared(config, env)
    text = read_text(config.data.path)
    tokenizer = build_tokenizer(config, text)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    tokens = torch.tensor(ids, dtype=torch.long)
    data = TokenStreamData(
        tokens,
        config.data.seq_len,
        config.train.micro_batch_size,
        config.data.val_fraction,
        config.seed,
        rank=env.rank,
        world_size=env.world_size,
        source=f"data.path={config.data.path}",
    )
    return tokenizer, data


def _prepare_all(config: RunConfig, build: bool = True, env: DistEnv | None = None) -> list:
    """The prepared folder of `data.path`, or one per entry of `data.sources` (`env`: the ranks that build it)."""
    from ftdist.data.mixture_prepare import prepare_sources
    from ftdist.data.prepare import prepare

    return prepare_sources(config, build, env) if config.data.sources else [prepare(config, build, env=env)]


def _prepared(config: RunConfig, env: DistEnv) -> tuple[PreTrainedTokenizerBase, PreparedData]:
    if env.distributed and joined() and _cache_shared(config):
        # Every rank builds its units of a missing cache, rank 0 seals it; a failure anywhere stops every rank.
        failure = lambda: DataError("another rank failed while preparing the data (its error is in its output)")  # noqa: E731
        prepared = all_agree(lambda: _prepare_all(config, env=env), failure)
    else:  # one process, or no shared cache: rank 0 prepares (or finds the cache); the others read their copy
        prepared = on_rank0(lambda: _prepare_all(config), "preparing the data", DataError)
        if prepared is None:
            prepared = _prepare_all(config, build=False)
    batch, seed, rank, world = config.train.micro_batch_size, config.seed, env.rank, env.world_size
    if config.data.sources:
        trains, vals = [p.splits["train"] for p in prepared], [p.splits["val"] for p in prepared]
        weights = [source.weight for source in config.data.sources]
        names = [f"data.sources.{i} ({s.path})" for i, s in enumerate(config.data.sources)]
        return prepared[0].tokenizer, MixtureData(trains, vals, weights, batch, seed, rank, world, names)
    source = PreferenceData if config.data.recipe == "preference" else PreparedData
    data = source(prepared[0].splits, batch, seed, rank, world, source=f"data.path={config.data.path}")
    return prepared[0].tokenizer, data


def _cache_shared(config: RunConfig) -> bool:
    """Whether every rank sees `data.cache_dir` as one folder: rank 0 leaves a note there, every rank looks for
    it (the all-reduce is also the barrier after which rank 0 removes it). The ranks build a cache together only
    there; otherwise they would wait for files they can never see."""
    from ftdist.data.build_ranks import attempt_id

    note = Path(config.data.cache_dir).expanduser() / f".ranks-{attempt_id()}"

    def leave_note() -> None:
        note.parent.mkdir(parents=True, exist_ok=True)
        note.write_text("rank 0 was here\n")

    on_rank0(leave_note, "writing a note in data.cache_dir", DataError)
    shared = not any_rank(not note.exists())
    if rank() == 0:
        note.unlink(missing_ok=True)
    return shared
