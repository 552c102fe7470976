"""`strategy: single`: one process, one device. Checkpoints are the "whole" format: model.safetensors (what the
method's state filter keeps) plus optimizer.pt, identical whichever rank count wrote them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn

from ftdist.strategies.base import OptimizerFactory, Strategy
from ftdist.strategies.layers import enable_hf_activation_checkpointing
from ftdist.strategies.materialize import place

MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"


class SingleDevice(Strategy):
    """Everything on one device, no process group."""

    checkpoint_format = "whole"
    layout = MODEL_FILE

    @classmethod
    def preflight(cls, config, world) -> list[str]:
        if world.size > 1:
            return [
                f"strategy: single runs one process, but this job has {world.size}; use strategy: ddp, fsdp or "
                "deepspeed (e.g. strategy=ddp on the command line), or start one process."
            ]
        return []

    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        if self.config.strategy.activation_checkpointing:
            enable_hf_activation_checkpointing(model)
        model = place(model, self.device)  # a DDP skeleton gets storage here; DDP's wrap fills it from rank 0
        return model, build_optimizer(model)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        if not self.env.is_main:  # the state is the same on every rank (ddp): rank 0 writes it
            return
        module = self.unwrap(model)
        if self.state_filter.trainable_only:
            selected = self.state_filter.select(module.state_dict(), module)
            save_file({k: v.detach().contiguous().cpu() for k, v in selected.items()}, str(directory / MODEL_FILE))
        else:
            save_model(module, str(directory / MODEL_FILE))  # handles tied weights
        torch.save(optimizer.state_dict(), directory / OPTIMIZER_FILE)

    def snapshot(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path
    ) -> Callable[[], Callable[[], None]]:
        """Host copies of what `save` writes (rank 0's; the state is the same on every rank), made by the
        stager's thread while training goes on, written later."""
        if not self.env.is_main:
            return lambda: lambda: None
        module = self.unwrap(model)
        state = module.state_dict()  # references to the live tensors: the stager copies them
        if self.state_filter.trainable_only:
            state, metadata = self.state_filter.select(state, module), None
        else:
            state, metadata = _without_shared_names(state)  # as safetensors' save_model writes tied weights
        staging = self.host_stager().stage({"model": state, "optimizer": optimizer.state_dict()})

        def copied() -> Callable[[], None]:
            staged = staging.result()

            def write() -> None:
                tensors = {name: tensor.contiguous() for name, tensor in staged["model"].items()}
                save_file(tensors, str(directory / MODEL_FILE), metadata=metadata)
                torch.save(staged["optimizer"], directory / OPTIMIZER_FILE)

            return write

        return copied

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        module = self.unwrap(model)
        if self.state_filter.trainable_only:
            state = load_file(str(directory / MODEL_FILE), device=str(self.device))
            self.state_filter.load_into(module, state, str(directory / MODEL_FILE))
        else:
            load_model(module, str(directory / MODEL_FILE), device=str(self.device))
        optimizer.load_state_dict(torch.load(directory / OPTIMIZER_FILE, map_location=self.device, weights_only=True))

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        if not self.env.is_main:
            return None
        return {name: tensor.detach().cpu() for name, tensor in self.unwrap(model).state_dict().items()}

    @classmethod
    def owns(cls, folder: Path) -> bool:
        return (Path(folder) / MODEL_FILE).is_file()

    @classmethod
    def read_full_state(cls, folder: Path) -> dict[str, torch.Tensor]:
        return load_file(str(Path(folder) / MODEL_FILE))


def _without_shared_names(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str] | None]:
    """The state dict as `safetensors.torch.save_model` stores it: one name per shared tensor (tied embeddings),
    the dropped names recorded in the metadata, so `load_model` reads a snapshot like a synchronous save. It uses
    safetensors' own rule (a private helper) because that rule decides which name `load_model` expects."""
    from safetensors.torch import _remove_duplicate_names

    state = dict(state)
    metadata: dict[str, str] = {}
    for kept, dropped in _remove_duplicate_names(state).items():
        for name in dropped:
            metadata[name] = kept
            del state[name]
    return state, metadata or None
