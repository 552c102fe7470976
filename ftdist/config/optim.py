"""`optim:` and `schedule:` the optimizer and its learning-rate curve."""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat

from ftdist.config.base import NamedSection


class OptimConfig(NamedSection):
    """The optimizer. Weight decay never applies to biases, norms or embeddings of size 1 per feature."""

    name: Literal["adamw", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd"] = "adamw"
    """`adamw` (torch, fused where the device supports it); `adamw_8bit` (bitsandbytes, 8-bit moments);
    `paged_adamw_8bit` / `paged_adamw_32bit` (bitsandbytes, optimizer state in CUDA unified memory that pages
    to the CPU under memory pressure; CUDA only); or `sgd`."""
    lr: PositiveFloat = 1e-3
    """Peak learning rate."""
    weight_decay: NonNegativeFloat = 0.01
    """Decoupled weight decay on matrices (not on biases or norm weights)."""
    betas: tuple[float, float] = (0.9, 0.999)
    """Adam moment coefficients."""
    eps: PositiveFloat = 1e-8
    """Adam epsilon."""
    momentum: NonNegativeFloat = 0.0
    """SGD momentum."""
    on_unsupported: Literal["error", "fallback"] = "error"
    """What a paged optimizer does without CUDA: `error` stops with a message; `fallback` uses the unpaged
    bitsandbytes optimizer and says so once (bitsandbytes alone would fall back without telling)."""


class ScheduleConfig(NamedSection):
    """The learning-rate schedule, as a multiplier on `optim.lr` per optimizer step."""

    name: Literal["constant", "linear", "cosine"] = "constant"
    """`constant`; `linear`: warmup then linear decay to `min_lr_ratio`; `cosine`: warmup then cosine decay."""
    warmup_steps: NonNegativeInt = 0
    """Steps of linear warmup from 0 to the peak learning rate."""
    min_lr_ratio: NonNegativeFloat = 0.0
    """Final learning rate as a fraction of the peak (linear and cosine)."""
