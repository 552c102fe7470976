"""The batch source for `data.sources`: rows of several prepared sets, interleaved exactly by weight.

The schedule: global row p (counted over the whole run) comes from the source s with the largest deficit
`w_s * (p + 1) - taken_s` (ties: the first source), where w are the weights normalised to sum 1 and taken_s
the rows s gave so far. So after any number of rows, every source has given its share to within one row
(a smooth weighted round robin; no sampling noise to wait out), and the schedule depends on p alone.

Each source keeps its own seeded shuffle per epoch, `permutation([seed, source, epoch])`, and a cursor. A
source that runs out starts its next epoch in a new order (it cycles; the log says so, with its count). The
state is three lists of integers (rows taken, epoch and cursor per source), saved with every checkpoint:
resuming replays exactly the rows an uninterrupted run would have read.

As for one source, every rank computes the whole global batch (`micro_batch_size * world_size` rows) and keeps
its slice, so the order does not depend on the world size, and a run may resume on another one.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ftdist.data.prepared import Batch, PreparedData
from ftdist.data.shards import KEYS, ShardedSplit
from ftdist.errors import DataError

log = logging.getLogger("ftdist.data")


class MixtureData(PreparedData):
    """Batches like `PreparedData`'s, drawn from several sources by weight; eval reads every source's val rows."""

    def __init__(
        self,
        trains: list[ShardedSplit],
        vals: list[ShardedSplit],
        weights: list[float],
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        names: list[str] | None = None,
    ) -> None:
        splits = {"train": ShardedSplit.concat(trains), "val": ShardedSplit.concat(vals)}
        super().__init__(splits, batch_size, seed, rank, world_size, source="data.sources")
        self.trains = trains
        total = float(sum(weights))
        self.weights = np.array([w / total for w in weights], dtype=np.float64)
        self.names = names or [f"data.sources.{i}" for i in range(len(trains))]
        count = len(trains)
        self.taken, self.epochs, self.cursors = [0] * count, [0] * count, [0] * count
        self._orders: dict[int, tuple[int, np.ndarray]] = {}

    def next_batch(self) -> Batch:
        picks = [self._pick() for _ in range(self.global_batch)]  # (source, row) for the whole global batch
        mine = picks[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        sources = np.array([source for source, _ in mine])
        index = np.array([row for _, row in mine])
        rows = np.empty((len(mine), len(KEYS), self.seq_len), dtype=np.int32)  # (B, keys, T)
        for source in np.unique(sources):
            hits = sources == source
            rows[hits] = self.trains[source].gather(index[hits])
        return {key: torch.from_numpy(rows[:, k].astype(np.int64)) for k, key in enumerate(KEYS)}

    def _pick(self) -> tuple[int, int]:
        rows = sum(self.taken)
        deficit = self.weights * (rows + 1) - np.array(self.taken)
        source = int(np.argmax(deficit))  # first of the largest
        order = self._source_order(source)
        row = int(order[self.cursors[source]])
        self.taken[source] += 1
        self.cursors[source] += 1
        if self.cursors[source] == len(order):
            self.epochs[source], self.cursors[source] = self.epochs[source] + 1, 0
            log.info(
                "%s ran out after %d rows; it starts over in a new order (pass %d)",
                self.names[source],
                self.taken[source],
                self.epochs[source] + 1,
            )
        return source, row

    def _source_order(self, source: int) -> np.ndarray:
        epoch = self.epochs[source]
        cached = self._orders.get(source)
        if cached is None or cached[0] != epoch:
            order = np.random.default_rng([self.seed, source, epoch]).permutation(len(self.trains[source]))
            self._orders[source] = cached = (epoch, order)
        return cached[1]

    def shares(self) -> list[float]:
        """The share of rows each source has given so far."""
        total = max(1, sum(self.taken))
        return [taken / total for taken in self.taken]

    def state_dict(self) -> dict:
        return {"taken": list(self.taken), "epochs": list(self.epochs), "cursors": list(self.cursors)}

    def load_state_dict(self, state: dict) -> None:
        if "taken" not in state or len(state["taken"]) != len(self.trains):
            had = len(state["taken"]) if "taken" in state else 1
            raise DataError(
                f"the checkpoint's data position is for {had} source(s), but data.sources lists {len(self.trains)}; "
                "resume with the data.sources the run started with, or start a new run (checkpoint.resume=never)"
            )
        self.taken = [int(v) for v in state["taken"]]
        self.epochs = [int(v) for v in state["epochs"]]
        self.cursors = [int(v) for v in state["cursors"]]
