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
    """A 4-bit (bitsandbytes) base cannot be partitioned by ZeRO-3 or FSDP here."""
    strategy = config.strategy
    shards_params = (strategy.name == "deepspeed" and strategy.zero_stage == 3) or strategy.name == "fsdp"
    if shards_params and _loads_4bit(config.method):
        where = f"strategy.name={strategy.name}" + (" with zero_stage=3" if strategy.name == "deepspeed" else "")
        raise ValueError(
            f"method={config.method.name} keeps the base model in 4-bit, which {where} cannot shard (it needs "
            "a quantized-storage dtype that ftdist does not set up). Use strategy: ddp or strategy: {name: "
            "deepspeed, zero_stage: 2} with the 4-bit base, or method: lora (16-bit base) with fsdp / ZeRO-3"
        )


def _loads_4bit(method: Any) -> bool:
    # The methods section may spell quantization as a method name (qlora) or as a field; accept both.
    if method.name == "qlora":
        return True
    bits = getattr(method, "bits", None) or getattr(method, "quantize_bits", None)
    return bits == 4 or bool(getattr(method, "load_in_4bit", False))
