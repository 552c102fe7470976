"""Tokenized preference records -> prepared rows: one row per record, every sequence of it side by side.

Keys (each (N, seq_len) int32, a sequence exactly as `pack(..., packing=False)` makes it alone: inputs
ids[:-1], targets labels[1:] with -100 on the prompt and the padding, right-padded with the pad id, positions
0..n-1 then the padding block from 0):
- pairs: `chosen_input_ids, chosen_labels, chosen_position_ids, rejected_input_ids, rejected_labels,
  rejected_position_ids`;
- unpaired: `input_ids, labels, position_ids, kl_input_ids, kl_labels, kl_position_ids, desirable` (the row's
  0/1 flag, repeated along the row).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from ftdist.data.packing import pack
from ftdist.data.shards import KEYS
from ftdist.data.tokenize_preference import TokenizedPreference

PAIR_KEYS = tuple(f"{side}_{key}" for side in ("chosen", "rejected") for key in KEYS)
UNPAIRED_KEYS = (*KEYS, *(f"kl_{key}" for key in KEYS), "desirable")


def preference_rows(items: list[TokenizedPreference], seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """The rows of `items` (all pairs or all unpaired), keys in the order above."""
    out: dict[str, np.ndarray] = {}
    for name in items[0].sequences:
        arrays = pack([item.sequences[name] for item in items], seq_len, pad_id, packing=False)
        out.update({f"{name}_{key}" if name else key: value for key, value in arrays.items()})
    if items[0].desirable is not None:
        flags = np.array([item.desirable for item in items], dtype=np.int32)
        out["desirable"] = np.repeat(flags[:, None], seq_len, axis=1)  # (N, seq_len)
    return out


def row_kind(keys: Iterable[str]) -> str:
    """`pairs`, `unpaired` or `tokens` (every other recipe's packed rows), from a split's keys."""
    keys = set(keys)
    return "pairs" if "chosen_input_ids" in keys else "unpaired" if "desirable" in keys else "tokens"


def sequence_prefixes(kind: str) -> tuple[str, ...]:
    """The key prefixes of a row's sequences: ("chosen_", "rejected_"), ("", "kl_") or ("",)."""
    return {"pairs": ("chosen_", "rejected_"), "unpaired": ("", "kl_")}.get(kind, ("",))
