"""Checks between `strategy:` and the rest of the run config, called from `RunConfig`'s validator.

They run when the config is loaded (in `ftdist validate`, in the launcher, and in every worker before the
process group starts), so a contradiction stops the job with one message instead of N stack traces.
"""

from __future__ import annotations

import os
from typing import Any

from ftdist.strategies import deepspeed_config


def check_deepspeed_json(config: Any) -> None:
    """A user DeepSpeed JSON may not contradict train:, precision: or strategy: (see deepspeed_config.merge)."""
    strategy = config.strategy
    if strategy.name != "deepspeed" or not strategy.deepspeed_config:
        return
    user = deepspeed_config.read_user_config(strategy.deepspeed_config)
    # torchrun/srun have set WORLD_SIZE by now inside a job; outside one, train_batch_size is checked later.
    world = os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS")
    precision = config.precision if config.precision != "auto" else None
    generated = deepspeed_config.generate_for_run(config, int(world or 1), precision or "fp32")
    if precision is None:  # `auto` resolves on the device; only check what is known now
        generated.pop("bf16"), generated.pop("fp16")
    deepspeed_config.merge(user, generated, strategy.deepspeed_config, check_batch=world is not None)


def check_quantized_sharding(config: Any) -> None:
    """A bitsandbytes-quantized base runs whole on every process: only `single` and `ddp` are tested with it.

    ZeRO-3 and FSDP would have to partition the packed 4/8-bit weights (they need a quantized-storage dtype
    that ftdist does not set up); DeepSpeed stages 1-2 do not partition frozen weights but are untested here.
    """
    strategy = config.strategy
    if config.method.name != "qlora" or strategy.name in ("single", "ddp"):
        return
    where = f"strategy.name={strategy.name}" + (
        f" with zero_stage={strategy.zero_stage}" if strategy.name == "deepspeed" else ""
    )
    raise ValueError(
        f"method: qlora keeps the base model quantized (bitsandbytes 4/8-bit) on every process, which {where} "
        "cannot shard here; use strategy: single or ddp with QLoRA, or method: lora (16-bit base) with fsdp or "
        "deepspeed"
    )
