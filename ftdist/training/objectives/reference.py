"""The reference model's log-probabilities for DPO and KTO, without a second copy of the model.

- `adapters`: the policy itself with its adapters disabled (peft's `disable_adapter`) is exactly the base the
  adapters started from. One extra forward per step, under no_grad, and no extra weights.
- `precompute`: before the first step, the policy *is* the reference: it scores every row of both splits once
  (each rank a share of the rows, in global batches so sharded strategies run their collectives together),
  and the table goes into the run folder (`RunFolder.reference`). Every later step, and a resumed run,
  reads the row's scores from it: no extra forward and no extra weights, on any strategy.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ftdist.distributed.collectives import on_rank0
from ftdist.errors import FtdistError
from ftdist.staging import staged_folder
from ftdist.training.objectives.base import Batch

SPLITS = ("train", "val")


class AdapterReference:
    """Reference scores from the same forward function with the adapters switched off."""

    def __init__(self, strategy, score) -> None:
        self.strategy, self.score = strategy, score  # score(model, batch) -> (N,) tensors, as the objective's

    def scores(self, model: nn.Module, batch: Batch, split: str = "train") -> tuple[torch.Tensor, ...]:
        peft_model = self.strategy.unwrap(model)
        if not hasattr(peft_model, "disable_adapter"):
            raise FtdistError("reference: adapters needs a LoRA model (method.finetuning: lora or qlora)")
        with torch.no_grad(), peft_model.disable_adapter():
            return tuple(value.detach() for value in self.score(model, batch))

    def prepare(self, trainer) -> None:
        return None


class PrecomputedReference:
    """Reference scores looked up by row from a table the starting model wrote before training."""

    def __init__(self, score, device: torch.device, columns: int = 2) -> None:
        self.score, self.device, self.columns = score, device, columns
        self.tables: dict[str, torch.Tensor] = {}

    def scores(self, model: nn.Module, batch: Batch, split: str = "train") -> tuple[torch.Tensor, ...]:
        table = self.tables[split][batch["index"]].to(self.device)  # (B, columns)
        return tuple(table[:, column] for column in range(self.columns))

    def prepare(self, trainer) -> None:
        """Load the run's table, or compute it now with the starting model (every rank takes part)."""
        folder = trainer.run.reference
        path = folder / "scores.npz"
        if trainer.step > 0 and not path.exists():
            raise FtdistError(
                f"{path} is missing: this run resumes at step {trainer.step}, and its reference scores were "
                "computed by the starting model, which no longer exists. Restore the file, or start the run afresh"
            )
        if not path.exists():
            tables = {split: self._compute(trainer, split) for split in SPLITS}

            def write() -> None:
                with staged_folder(folder, intact="Nothing of the training was written yet") as staging:
                    np.savez(staging / "scores.npz", **{split: table.numpy() for split, table in tables.items()})

            on_rank0(write, f"writing the reference scores {path}")
            self.tables = tables
            return
        with np.load(path) as stored:
            self.tables = {split: torch.from_numpy(stored[split]) for split in SPLITS}
        for split in SPLITS:
            if len(self.tables[split]) != trainer.data.rows(split):
                raise FtdistError(
                    f"{path} scores {len(self.tables[split])} {split} rows, but the data has "
                    f"{trainer.data.rows(split)}: the data changed since the run started; start a new run"
                )

    @torch.no_grad()
    def _compute(self, trainer, split: str) -> torch.Tensor:
        """Every row's scores: global batches of micro_batch_size rows per rank; the last one wraps around."""
        data, env = trainer.data, trainer.env
        rows, batch = data.rows(split), trainer.config.train.micro_batch_size
        step = batch * env.world_size
        mine: list[torch.Tensor] = []
        trainer.model.eval()
        for start in range(0, rows, step):
            index = (np.arange(batch) + start + env.rank * batch) % rows
            with trainer.strategy.autocast():
                scores = self.score(trainer.model, data.rows_at(split, index))
            mine.append(torch.stack([s.float().cpu() for s in scores], dim=1))  # (batch, columns)
        trainer.model.train()
        local = torch.cat(mine) if mine else torch.empty(0, self.columns)
        parts = [local]
        if env.world_size > 1:
            parts = [None] * env.world_size
            dist.all_gather_object(parts, local)
        # rank r's k-th batch holds rows k*step + r*batch + (0..batch-1): interleave back into row order
        per_rank = [part.view(-1, batch, self.columns) for part in parts]
        table = torch.stack(per_rank, dim=1).reshape(-1, self.columns)
        return table[:rows].clone()


def build_reference(method_config, strategy, score, device: torch.device):
    """The reference `method_config.reference` names (adapters or precompute); `score(model, batch)` gives the
    two columns it stands in for."""
    if method_config.reference == "adapters":
        return AdapterReference(strategy, score)
    return PrecomputedReference(score, device)
