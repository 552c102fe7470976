"""Turn `data:` into a tokenizer and a batch source the trainer can draw from.

A batch source has `next_batch()`, `eval_batches(split, count, step)`, `tokens_per_batch`, and
`state_dict()` / `load_state_dict()` (its position, for exact resume). Batches hold `input_ids` and
`labels` aligned position by position (already shifted; -100 marks tokens that do not count).
"""

from __future__ import annotations

import torch
from transformers import PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.data.sources import read_text
from ftdist.data.stream import TokenStreamData
from ftdist.env import DistEnv
from ftdist.models import build_tokenizer

__all__ = ["TokenStreamData", "build_data"]


def build_data(config: RunConfig, env: DistEnv) -> tuple[PreTrainedTokenizerBase, TokenStreamData]:
    """Read the data, build or load the tokenizer, and return (tokenizer, batch source)."""
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
