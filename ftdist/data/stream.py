"""The `stream` recipe: one token stream, split by position, sampled as random windows.

This is nanoGPT's and the tiny SQL GPT paper's protocol: the first (1 - val_fraction) of the tokens train,
the rest validate, and every batch draws `batch` random start offsets. The sampler owns a
`torch.Generator`, so its state *is* the data position: saving it makes resume replay the same batches.
Evaluation draws from separate generators seeded by (seed, step, split), so evaluating never shifts the
training order.

Under several processes every rank runs the *same* generator, draws the whole global batch
(`batch * world_size` windows) and keeps its own slice. The data order therefore does not depend on the
world size: 2 ranks x 8 sequences see exactly the 16 sequences 1 rank x 16 sees, which is what makes a
2-rank run reproduce a 1-rank run with the same global batch (and lets a run resume on another world size).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ftdist.errors import DataError

Batch = dict[str, torch.Tensor]


class TokenStreamData:
    """Random windows over a token stream. Batches are `input_ids` (B, T) and aligned `labels` (B, T)."""

    row_kind = "tokens"

    def __init__(
        self,
        tokens: torch.Tensor,
        seq_len: int,
        batch_size: int,
        val_fraction: float,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        source: str = "data.path",
    ) -> None:
        split = int(len(tokens) * (1 - val_fraction))
        self.splits = {"train": tokens[:split], "val": tokens[split:]}
        for name, part in self.splits.items():
            if len(part) <= seq_len:
                raise DataError(
                    f"{source}: the {name} split has {len(part)} tokens but data.seq_len={seq_len} needs at least "
                    f"{seq_len + 1}; lower data.seq_len, change data.val_fraction={val_fraction}, or add text"
                )
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)  # the same on every rank: see the module docstring

    @property
    def tokens_per_batch(self) -> int:
        return self.batch_size * self.seq_len

    def rows(self, split: str) -> int:
        """The windows `split` can give: one per start offset."""
        return len(self.splits[split]) - self.seq_len

    def next_batch(self) -> Batch:
        return self._windows(self.splits["train"], self.generator)

    def eval_batches(self, split: str, count: int, step: int) -> Iterator[Batch]:
        split_index = list(self.splits).index(split)  # not hash(): str hashes change between processes
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 2 + split_index)
        for _ in range(count):
            yield self._windows(self.splits[split], generator)

    def _windows(self, data: torch.Tensor, generator: torch.Generator) -> Batch:
        everyone = torch.randint(len(data) - self.seq_len, (self.batch_size * self.world_size,), generator=generator)
        starts = everyone[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]  # (B,) this rank's slice
        offsets = torch.arange(self.seq_len + 1)  # (T+1,)
        window = data[starts[:, None] + offsets]  # (B, T+1)
        return {"input_ids": window[:, :-1], "labels": window[:, 1:]}  # next-token targets, aligned

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
