"""Training methods: which parameters train and how the base model is prepared (adapters, quantization).

A method is a `Method` class (ftdist/methods/base.py): `apply` returns the model to train, `state_filter`
says which of its tensors a checkpoint holds (every strategy applies it the same way), and `preflight`
checks what the method needs of the job. A new method is a new module and one line in REGISTRY, never a
branch in the trainer.
"""

from __future__ import annotations

import importlib

from ftdist.methods.base import Method

# name -> "module:Class". Imported on use, so a full fine-tune never imports peft.
REGISTRY: dict[str, str] = {
    "pretrain": "ftdist.methods.full:FullMethod",
    "full": "ftdist.methods.full:FullMethod",
    "lora": "ftdist.methods.lora:LoraMethod",
    "qlora": "ftdist.methods.lora:QLoraMethod",
}


def method_class(name: str) -> type[Method]:
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def apply_method(model, config):
    """The model to train under `config.method` (the base with adapters, or the base itself)."""
    return method_class(config.method.name).apply(model, config)


__all__ = ["REGISTRY", "Method", "apply_method", "method_class"]
