"""The batch source for prepared (tokenized, packed) data: epochs over seeded permutations, sharded by rank.

The rows are memory-mapped shards (`ftdist.data.shards`): each rank reads only the rows it draws.
The order of epoch e is `permutation(seed, e)`, so the position is just (epoch, cursor): saving those two
numbers makes resume replay exactly the batches an uninterrupted run would have seen. Every step takes one
*global* batch of `micro_batch_size * world_size` rows and rank r keeps its slice r, so a 2-rank run sees the
same global batches as a 1-rank run with twice the micro-batch. A last partial global batch of an epoch is
skipped (its rows come back, shuffled, in the next epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ftdist.errors import DataError

Batch = dict[str, torch.Tensor]


def split_rows(split) -> int:
    """Rows in a split (a `ShardedSplit` or a dict of (N, seq_len) arrays)."""
    return len(split[next(iter(split))])


def rows_batch(arrays, index: np.ndarray) -> Batch:
    """Rows `index` of a split as int64 tensors; memory-mapped shards are gathered once for all keys."""
    if hasattr(arrays, "gather"):
        rows = arrays.gather(index).astype(np.int64)  # (B, keys, T)
        return {key: torch.from_numpy(rows[:, k]) for k, key in enumerate(arrays.keys())}
    return {key: torch.from_numpy(arrays[key][index].astype(np.int64)) for key in arrays}


class PreparedData:
    """Batches `input_ids`, `labels` (aligned, -100 = ignored) and `position_ids`, each (B, T)."""

    row_kind = "tokens"  # packed token rows; `PreferenceData` says "pairs" or "unpaired"

    def __init__(
        self,
        splits: dict[str, dict[str, np.ndarray]],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        source: str = "data.path",
    ) -> None:
        self.splits = splits
        self.batch_size, self.seed, self.rank, self.world_size = batch_size, seed, rank, world_size
        self.global_batch = batch_size * world_size
        rows = split_rows(splits["train"])
        if rows < self.global_batch:
            raise DataError(
                f"{source}: the prepared train split has {rows} sequences, fewer than one global batch "
                f"(train.micro_batch_size={batch_size} x {world_size} ranks); lower train.micro_batch_size, "
                "lower data.seq_len, or add data"
            )
        self.seq_len = splits["train"][next(iter(splits["train"]))].shape[1]
        self.epoch, self.cursor = 0, 0
        self._order_epoch, self._order = -1, np.empty(0, dtype=np.int64)

    @property
    def tokens_per_batch(self) -> int:
        return self.batch_size * self.seq_len

    def rows(self, split: str) -> int:
        """Rows in `split` ("train" or "val")."""
        return split_rows(self.splits[split])

    def next_batch(self) -> Batch:
        rows = self.rows("train")
        if self.cursor + self.global_batch > rows:
            self.epoch, self.cursor = self.epoch + 1, 0
        order = self._epoch_order(rows)
        start = self.cursor + self.rank * self.batch_size
        self.cursor += self.global_batch
        return self._rows("train", order[start : start + self.batch_size])

    def eval_batches(self, split: str, count: int, step: int) -> Iterator[Batch]:
        """The same fixed batches at every evaluation (the first ones of the split, in order), so that the
        numbers are comparable from step to step; never more batches than it takes to cover the split once."""
        rows = self.rows(split)
        count = min(count, -(-rows // self.global_batch))
        for k in range(count):
            start = k * self.global_batch + self.rank * self.batch_size
            yield self._rows(split, np.arange(start, start + self.batch_size) % rows)

    def _epoch_order(self, rows: int) -> np.ndarray:
        if self._order_epoch != self.epoch:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(rows)
            self._order_epoch = self.epoch
        return self._order

    def rows_at(self, split: str, index: np.ndarray) -> Batch:
        """The batch of rows `index` of `split` (a DPO/KTO reference scores every row through it once)."""
        return self._rows(split, index)

    def _rows(self, split: str, index: np.ndarray) -> Batch:
        return rows_batch(self.splits[split], index)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
