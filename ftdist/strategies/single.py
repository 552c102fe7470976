"""`strategy: single`: one process, one device. Checkpoints are a Hugging Face folder plus optimizer state."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ftdist.errors import FtdistError
from ftdist.methods.state import load_model_state, save_model_state
from ftdist.strategies.base import OptimizerFactory, Strategy

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


class SingleDevice(Strategy):
    """Everything on one device, no process group."""

    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        if self.env.distributed:
            raise FtdistError(
                f"strategy: single runs one process, but this job has {self.env.world_size} "
                "(torchrun/srun started several); use strategy: ddp, fsdp or deepspeed, or start one process"
            )
        model = model.to(self.device)
        return model, build_optimizer(model)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        save_model_state(self.unwrap(model), str(directory / MODEL_FILE))  # trainable weights only under LoRA
        torch.save(optimizer.state_dict(), directory / OPTIMIZER_FILE)

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        load_model_state(self.unwrap(model), str(directory / MODEL_FILE), device=str(self.device))
        optimizer.load_state_dict(torch.load(directory / OPTIMIZER_FILE, map_location=self.device, weights_only=True))

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        return {name: tensor.detach().cpu() for name, tensor in self.unwrap(model).state_dict().items()}
