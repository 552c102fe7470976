"""`strategy: ddp`: every rank holds the whole model; gradients are all-reduced (averaged) in backward.

Checkpoints use `single`'s format (rank 0 writes model.safetensors + optimizer.pt; the state is identical on
every rank), so a DDP checkpoint resumes under `single` and the other way round.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from ftdist.strategies.base import OptimizerFactory, Strategy
from ftdist.strategies.layers import enable_hf_activation_checkpointing
from ftdist.strategies.single import cpu_state_dict, load_whole, save_whole


class DataParallel(Strategy):
    """torch DistributedDataParallel; the optimizer runs on every rank over identical gradients."""

    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        if self.config.strategy.activation_checkpointing:
            enable_hf_activation_checkpointing(model)
        model = model.to(self.device)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        wrapped = DDP(model, device_ids=device_ids) if dist.is_initialized() else model
        return wrapped, build_optimizer(model)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model.module if isinstance(model, DDP) else model

    def accumulating(self, model: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager:
        # Skip the all-reduce until the last micro-batch: the gradients add up locally first.
        if isinstance(model, DDP) and not last_micro_step:
            return model.no_sync()
        return contextlib.nullcontext()

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        if self.env.is_main:
            save_whole(self.unwrap(model), optimizer, directory)

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        load_whole(self.unwrap(model), optimizer, directory, self.device)

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        return cpu_state_dict(self.unwrap(model)) if self.env.is_main else None
