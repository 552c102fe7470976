"""The one interface every distribution strategy implements.

The trainer calls these methods and never asks which strategy it has. A strategy decides how the model is
wrapped, how a loss turns into a step, and how state is written and read; a new strategy is a new file.
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ftdist.config import RunConfig
from ftdist.env import DistEnv, Precision
from ftdist.errors import FtdistError

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]


class Strategy(ABC):
    """Wrap, step, save, load and unwrap one model across this job's processes."""

    checkpoint_format: ClassVar[str] = "whole"  # what `save` writes: whole | dcp | deepspeed (see consolidate.py)

    def __init__(self, config: RunConfig, env: DistEnv, device: torch.device, precision: Precision) -> None:
        self.config, self.env, self.device, self.precision = config, env, device, precision
        self.scaler = torch.amp.GradScaler(device.type) if precision.grad_scaler else None

    # --- setup ---------------------------------------------------------------------------------------------
    @abstractmethod
    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Move and wrap the model for this strategy, and build its optimizer. Returns (model, optimizer)."""

    @abstractmethod
    def unwrap(self, model: nn.Module) -> nn.Module:
        """The underlying transformers / peft model, for saving config, generation and export."""

    # --- one optimizer step ----------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for the forward pass."""
        dtype = self.precision.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def accumulating(self, model: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager:
        """Context for one micro-step's forward/backward; DDP skips the gradient all-reduce until the last."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, model: nn.Module) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        """Clip (if train.grad_clip > 0), step, and zero the gradients. Returns the gradient norm (nan if unknown)."""
        if self.scaler:
            self.scaler.unscale_(optimizer)
        norm = self.clip_gradients(model, self.config.train.grad_clip)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    def clip_gradients(self, model: nn.Module, max_norm: float) -> float:
        if max_norm <= 0:
            return math.nan
        params = [p for p in model.parameters() if p.grad is not None]
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    # --- state -----------------------------------------------------------------------------------------------
    @abstractmethod
    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        """Write model and optimizer state into `directory`. Called on every rank; the folder already exists."""

    def check_resumable(self, directory: Path) -> None:
        """Refuse, with the fix, a checkpoint written by a strategy whose format this one cannot read."""
        from ftdist.strategies.consolidate import WRITTEN_BY, checkpoint_format

        found = checkpoint_format(directory)
        if found != self.checkpoint_format:
            raise FtdistError(
                f"checkpoint {directory} was written by strategy {WRITTEN_BY[found]}, but this run uses strategy "
                f"{self.config.strategy.name}, which cannot load it; resume with strategy.name="
                f"{WRITTEN_BY[found].split(' or ')[0]}, or start a new output_dir from its weights "
                f"(ftdist export, then model.path=<the exported folder>)"
            )

    @abstractmethod
    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        """Restore what `save` wrote. Called on every rank after `prepare`."""

    @abstractmethod
    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The consolidated model weights on rank 0 (None on the others). Collective: call on every rank."""

    def scaler_state(self) -> dict | None:
        return self.scaler.state_dict() if self.scaler else None

    def load_scaler_state(self, state: dict | None) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)

    def trainable_parameters(self, model: nn.Module) -> Iterator[nn.Parameter]:
        return (p for p in model.parameters() if p.requires_grad)
