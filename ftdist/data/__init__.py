"""Turn `data:` into a tokenizer and a batch source the trainer can draw from.

A batch source has `next_batch()`, `eval_batches(split, count, step)`, `tokens_per_batch`, and
`state_dict()` / `load_state_dict()` (its position, for exact resume). Batches hold `input_ids` and
`labels` aligned position by position (already shifted; -100 marks tokens that do not count); any other
key (`position_ids`) is passed to the model.

`stream` reads its text file directly. Every other recipe goes through `ftdist.data.prepare`: rank 0
tokenizes and packs once into the cache (or finds it there), the other ranks wait at a barrier and then
read the same cache, so no rank ever redoes the work.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.data.prepared import PreparedData
from ftdist.data.sources import read_text
from ftdist.data.stream import TokenStreamData
from ftdist.distributed.collectives import on_rank0
from ftdist.distributed.env import DistEnv
from ftdist.errors import DataError
from ftdist.models import build_tokenizer

__all__ = ["PreparedData", "TokenStreamData", "build_data"]


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


def _prepared(config: RunConfig, env: DistEnv) -> tuple[PreTrainedTokenizerBase, PreparedData]:
    from ftdist.data.prepare import prepare

    # Rank 0 tokenizes and packs into the cache (or finds it there); the others wait for it, then read it.
    prepared = on_rank0(lambda: prepare(config), "preparing the data", DataError)
    if prepared is None:
        prepared = prepare(config, build=False)
    data = PreparedData(
        prepared.splits,
        config.train.micro_batch_size,
        config.seed,
        rank=env.rank,
        world_size=env.world_size,
        source=f"data.path={config.data.path}",
    )
    return prepared.tokenizer, data
