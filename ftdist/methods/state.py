"""What a checkpoint holds of the model: every weight when all train, only the trainable ones otherwise.

Why: under LoRA/QLoRA the base is frozen and is rebuilt identically from its source on resume (`model.path`,
the cached GGUF conversion, or the run's saved scratch base), so writing it into every checkpoint would cost
gigabytes per step for nothing, and a 4-bit base's state dict (packed bytes plus quantization statistics) does
not load back into a freshly quantized model through `load_state_dict` anyway.
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import nn


def has_frozen_parameters(model: nn.Module) -> bool:
    return any(not p.requires_grad for p in model.parameters())


def save_model_state(model: nn.Module, path: str) -> None:
    """Write the model's checkpoint state to a safetensors file."""
    if not has_frozen_parameters(model):
        save_model(model, path)  # handles tied weights
        return
    trainable = {name: p.detach().contiguous().clone() for name, p in model.named_parameters() if p.requires_grad}
    save_file(trainable, path, metadata={"ftdist": "trainable-only"})


def load_model_state(model: nn.Module, path: str, device: str) -> None:
    """Restore what `save_model_state` wrote; a trainable-only file must cover every trainable parameter."""
    if not has_frozen_parameters(model):
        load_model(model, path, device=device)
        return
    state = load_file(path, device=device)
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(state) != expected:
        missing, extra = sorted(expected - set(state))[:5], sorted(set(state) - expected)[:5]
        raise RuntimeError(
            f"checkpoint {path} does not match the model's trainable parameters: missing {missing}, unexpected {extra}"
        )
    with torch.no_grad():
        parameters = dict(model.named_parameters())
        for name, tensor in state.items():
            parameters[name].copy_(tensor)
