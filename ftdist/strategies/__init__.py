"""Distribution strategies, one file each behind `Strategy`. Imported lazily so `single` needs no DeepSpeed."""

from __future__ import annotations

import importlib

import torch

from ftdist.config import RunConfig
from ftdist.env import DistEnv, Precision
from ftdist.strategies.base import Strategy

# name -> "module:Class"; a new strategy is a new file and one line here.
REGISTRY: dict[str, str] = {
    "single": "ftdist.strategies.single:SingleDevice",
    "ddp": "ftdist.strategies.ddp:DataParallel",
    "fsdp": "ftdist.strategies.fsdp:FullyShardedDataParallel",
    "deepspeed": "ftdist.strategies.deepspeed:DeepSpeedZero",
}


def build_strategy(config: RunConfig, env: DistEnv, device: torch.device, precision: Precision) -> Strategy:
    module_name, class_name = REGISTRY[config.strategy.name].split(":")
    strategy_class = getattr(importlib.import_module(module_name), class_name)
    return strategy_class(config, env, device, precision)


__all__ = ["REGISTRY", "Strategy", "build_strategy"]
