"""Training methods: which parameters train and how the base model is prepared (adapters, quantization).

`apply_method(model, config)` returns the model to train. A new method is a new module and one line in
REGISTRY, never a branch in the trainer.
"""

from __future__ import annotations

import importlib

from torch import nn

from ftdist.config import RunConfig

# name -> "module:function"; the function takes (model, config) and returns the model to train.
REGISTRY: dict[str, str] = {
    "pretrain": "ftdist.methods.full:apply",
    "full": "ftdist.methods.full:apply",
    "lora": "ftdist.methods.lora:apply",
    "qlora": "ftdist.methods.lora:apply",
}


def apply_method(model: nn.Module, config: RunConfig) -> nn.Module:
    module_name, function_name = REGISTRY[config.method.name].split(":")
    return getattr(importlib.import_module(module_name), function_name)(model, config)
