"""Training methods: which parameters train and how the base model is prepared (adapters, quantization).

A method is a `Method` class (ftdist/methods/base.py): `apply` returns the model to train, `state_filter`
says which of its tensors a checkpoint holds (every strategy applies it the same way), and `preflight`
checks what the method needs of the job. A new method is a new module and one line in REGISTRY, never a
branch in the trainer.
"""

from __future__ import annotations

from ftdist.methods.base import Method
from ftdist.registry import Registry

# Imported on use, so a full fine-tune never imports peft. `method_class(name)` -> the Method subclass.
_FULL, _LORA = "ftdist.methods.full:FullMethod", "ftdist.methods.lora"
REGISTRY = Registry(pretrain=_FULL, full=_FULL, lora=f"{_LORA}:LoraMethod", qlora=f"{_LORA}:QLoraMethod")
method_class = REGISTRY.load


def apply_method(model, config):
    """The model to train under `config.method` (the base with adapters, or the base itself)."""
    return method_class(config.method.weights).apply(model, config)


__all__ = ["REGISTRY", "Method", "apply_method", "method_class"]
