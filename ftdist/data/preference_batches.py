"""The batch source for preference rows: `PreparedData`'s order, resume and rank slices, with a row's
sequences side by side and each batch trimmed to its longest sequence.

A batch holds int64 tensors: every (B, T) key of the rows (`ftdist.data.preference_rows`), T the longest real
length in the batch (over all its sequences: the last non-padding position + 1), so no real token is cut and
short batches do not carry seq_len columns of padding; `desirable` (B,) for unpaired rows; and `index` (B,),
the rows' numbers in their split (to look up per-row values cached before training, such as reference
log-probabilities).
"""

from __future__ import annotations

import numpy as np
import torch

from ftdist.data.preference_rows import row_kind, sequence_prefixes
from ftdist.data.prepared import Batch, PreparedData, rows_batch


class PreferenceData(PreparedData):
    """Batches of preference rows (pairs, or unpaired examples with their KL sequences)."""

    def __init__(self, splits, batch_size: int, seed: int, rank: int = 0, world_size: int = 1, source="data.path"):
        super().__init__(splits, batch_size, seed, rank, world_size, source)
        self.row_kind = row_kind(splits["train"].keys())
        self.prefixes = sequence_prefixes(self.row_kind)

    @property
    def tokens_per_batch(self) -> int:
        """A bound on real tokens: two sequences of seq_len per row."""
        return self.batch_size * self.seq_len * 2

    def _rows(self, split: str, index: np.ndarray) -> Batch:
        batch = rows_batch(self.splits[split], index)
        desirable = batch.pop("desirable", None)
        width = max(real_length(batch[f"{prefix}position_ids"]) for prefix in self.prefixes)
        out = {key: value[:, :width].contiguous() for key, value in batch.items()}  # (B, T)
        if desirable is not None:
            out["desirable"] = desirable[:, 0].contiguous()  # (B,)
        out["index"] = torch.as_tensor(np.asarray(index), dtype=torch.int64)  # (B,)
        return out


def real_length(position_ids: torch.Tensor) -> int:
    """The longest real sequence of (B, seq_len) single-sequence rows: a row's padding block starts where its
    positions restart at 0 (a full row has none). At least 1."""
    restart = position_ids[:, 1:] == 0  # (B, seq_len - 1)
    lengths = torch.where(restart.any(dim=1), restart.to(torch.uint8).argmax(dim=1) + 1, position_ids.shape[1])
    return max(1, int(lengths.max()))
