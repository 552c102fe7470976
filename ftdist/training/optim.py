"""Optimizers and learning-rate schedules built from `optim:` and `schedule:`."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from torch.optim.lr_scheduler import LambdaLR

from ftdist.config.optim import OptimConfig, ScheduleConfig
from ftdist.device_rules import paged_needs_cuda
from ftdist.errors import FtdistError, FtdistWarning


def parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Decay matrices only: biases and norm weights (1-D) are not regularised toward zero."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    decay = [p for _, p in trainable if p.ndim >= 2]
    no_decay = [p for _, p in trainable if p.ndim < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# optim.name -> (bitsandbytes class, its unpaged twin): the twin is what runs when paging is unavailable.
BNB_OPTIMIZERS = {
    "adamw_8bit": ("AdamW8bit", "AdamW8bit"),
    "paged_adamw_8bit": ("PagedAdamW8bit", "AdamW8bit"),
    "paged_adamw_32bit": ("PagedAdamW32bit", "AdamW32bit"),
}


def build_optimizer(model: torch.nn.Module, config: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    """The optimizer over the model's trainable parameters."""
    groups = parameter_groups(model, config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)
    if config.name in BNB_OPTIMIZERS:
        return _bitsandbytes_optimizer(groups, config, device)
    # One fused kernel per step instead of a loop over tensors; CUDA and CPU have it.
    fused = device.type in ("cuda", "cpu") and all(p.is_floating_point() for g in groups for p in g["params"])
    return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=fused or None)


def lr_multiplier(config: ScheduleConfig, max_steps: int) -> Callable[[int], float]:
    """The schedule as a function of the optimizer step (0-based) returning a factor on the peak LR."""
    warmup, floor = config.warmup_steps, config.min_lr_ratio

    def factor(step: int) -> float:
        if config.name == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, max_steps - warmup))
        if config.name == "linear":
            return floor + (1.0 - floor) * (1.0 - progress)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, config: ScheduleConfig, max_steps: int) -> LambdaLR:
    return LambdaLR(optimizer, lr_multiplier(config, max_steps))


def _bitsandbytes_optimizer(groups: list[dict], config: OptimConfig, device: torch.device) -> torch.optim.Optimizer:
    """A bitsandbytes AdamW. Paging needs CUDA unified memory; elsewhere bitsandbytes silently runs unpaged,
    so ftdist decides explicitly (`optim.on_unsupported`) and says what it did."""
    try:
        import bitsandbytes.optim as bnb_optim
    except ImportError:
        raise FtdistError(f"optim.name={config.name} needs bitsandbytes; pip install bitsandbytes") from None
    paged_name, unpaged_name = BNB_OPTIMIZERS[config.name]
    name = paged_name
    if paged_name != unpaged_name and device.type != "cuda":
        if config.on_unsupported == "error":
            raise FtdistError(paged_needs_cuda(config.name, device.type))
        warnings.warn(
            f"optim.name={config.name}: paging needs CUDA and this run is on {device.type}; using the unpaged "
            f"bitsandbytes {unpaged_name} instead (optim.on_unsupported=fallback)",
            FtdistWarning,
            stacklevel=2,
        )
        name = unpaged_name
    return getattr(bnb_optim, name)(groups, lr=config.lr, betas=config.betas, eps=config.eps)
