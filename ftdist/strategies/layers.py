"""Finding a model's repeated blocks (the unit of sharding and of activation checkpointing)."""

from __future__ import annotations

from torch import nn

from ftdist.errors import FtdistError


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks, found by the class names transformers lists in `_no_split_modules`
    (e.g. LlamaDecoderLayer, GPT2Block); peft-wrapped models expose the same modules underneath."""
    names: set[str] = set()
    for module in model.modules():
        names.update(getattr(module, "_no_split_modules", None) or [])
    layers = [module for module in model.modules() if type(module).__name__ in names]
    if not layers:
        raise FtdistError(
            f"cannot find the decoder layers of {type(model).__name__} (no _no_split_modules); "
            "FSDP shards per layer and needs them. Use strategy: ddp or deepspeed for this model"
        )
    return layers


def enable_hf_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each layer in backward through transformers' own switch (no module renaming, so checkpoints
    and state dicts keep their names). Non-reentrant: works with DDP, ZeRO and frozen inputs (LoRA)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
