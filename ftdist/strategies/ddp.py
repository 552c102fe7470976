"""`strategy: ddp`: every rank holds the whole model; gradients are all-reduced (averaged) in backward.

It is `single` plus the wrapper: the same checkpoint format (rank 0 writes it; the state is identical on every
rank), so a DDP checkpoint resumes under `single` and the other way round, on any number of ranks.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ftdist.strategies.base import OptimizerFactory
from ftdist.strategies.materialize import build_on_rank0, rank0_reads
from ftdist.strategies.single import SingleDevice

if TYPE_CHECKING:  # see materialize.py
    from ftdist.models.recipe import ModelRecipe


class DataParallel(SingleDevice):
    """torch DistributedDataParallel; the optimizer runs on every rank over identical gradients."""

    @classmethod
    def preflight(cls, config, world) -> list[str]:
        return []

    def materialize(self, recipe: ModelRecipe) -> nn.Module:
        """Rank 0 reads the weights; the others build an empty skeleton (every rank still holds a whole model:
        that is DDP). No extra step is needed to fill it: DDP broadcasts rank 0's parameters and buffers, tied
        and non-persistent ones included, when it wraps the model (`init_sync`)."""
        return build_on_rank0(recipe, self.env) if rank0_reads(recipe, self.env) else recipe.build()

    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        model, optimizer = super().prepare(model, build_optimizer)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = DDP(model, device_ids=device_ids) if dist.is_initialized() else model
        return wrapped, optimizer

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model.module if isinstance(model, DDP) else model

    def accumulating(self, model: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager:
        # Skip the all-reduce until the last micro-batch: the gradients add up locally first.
        if isinstance(model, DDP) and not last_micro_step:
            return model.no_sync()
        return contextlib.nullcontext()
