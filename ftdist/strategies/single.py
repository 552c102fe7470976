"""`strategy: single`: one process, one device. Checkpoints are a Hugging Face folder plus optimizer state."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_model, save_model
from torch import nn

from ftdist.errors import FtdistError
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
        save_whole(self.unwrap(model), optimizer, directory)

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        load_whole(self.unwrap(model), optimizer, directory, self.device)

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        return cpu_state_dict(self.unwrap(model))


# The whole-model format, shared with `ddp` (whose state is the same on every rank).
def save_whole(model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
    save_model(model, str(directory / MODEL_FILE))  # handles tied weights
    torch.save(optimizer.state_dict(), directory / OPTIMIZER_FILE)


def load_whole(model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path, device: torch.device) -> None:
    load_model(model, str(directory / MODEL_FILE), device=str(device))
    optimizer.load_state_dict(torch.load(directory / OPTIMIZER_FILE, map_location=device, weights_only=True))


def cpu_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()}
