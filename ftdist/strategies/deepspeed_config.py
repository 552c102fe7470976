"""The DeepSpeed JSON, generated from the run config so the two cannot disagree.

DeepSpeed reads batch shape, accumulation, clipping and precision from its own JSON; ftdist reads them from
`train:` and `precision:`. We generate those keys from the run config. A user JSON (`strategy.deepspeed_config`)
may add anything else (bucket sizes, NVMe tuning ...) and may repeat our keys with the same value or
`"auto"`, but a value that contradicts the run config is an error naming both, raised before launch.
This module imports no DeepSpeed, so the config validator can use it cheaply.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Kept out of the logs: DeepSpeed would otherwise print its own step line every 10 steps.
QUIET_STEPS = 1 << 30


def generate(
    *,
    micro_batch_size: int,
    grad_accum: int,
    world_size: int,
    grad_clip: float,
    precision: str,
    zero_stage: int,
    offload_optimizer: str = "none",
    offload_param: str = "none",
    nvme_path: str | None = None,
    pin_memory: bool = False,
) -> dict[str, Any]:
    """The DeepSpeed config for one run. `precision` is the resolved one (fp32 | bf16 | fp16)."""
    zero: dict[str, Any] = {"stage": zero_stage}
    for key, device in (("offload_optimizer", offload_optimizer), ("offload_param", offload_param)):
        zero[key] = {"device": device}  # "none" written out, so a user JSON that offloads is caught as a conflict
        if device != "none":
            zero[key]["pin_memory"] = pin_memory
        if device == "nvme":
            zero[key]["nvme_path"] = nvme_path
    return {
        "train_micro_batch_size_per_gpu": micro_batch_size,
        "gradient_accumulation_steps": grad_accum,
        "train_batch_size": micro_batch_size * grad_accum * world_size,
        # DeepSpeed clips at 1.0 when this is absent, unlike every other strategy: always set it (0 = off).
        "gradient_clipping": grad_clip,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16", "loss_scale": 0},  # 0 = dynamic loss scaling
        "zero_optimization": zero,
        # ftdist builds the optimizer from `optim:`; a torch optimizer with offload is allowed (CPU runs, tests).
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "steps_per_print": QUIET_STEPS,
        "wall_clock_breakdown": False,
    }


def generate_for_run(config: Any, world_size: int, precision: str, pin_memory: bool = False) -> dict[str, Any]:
    """`generate` with the values of a RunConfig."""
    s = config.strategy
    return generate(
        micro_batch_size=config.train.micro_batch_size,
        grad_accum=config.train.grad_accum,
        world_size=world_size,
        grad_clip=config.train.grad_clip,
        precision=precision,
        zero_stage=s.zero_stage,
        offload_optimizer=s.offload_optimizer,
        offload_param=s.offload_param,
        nvme_path=s.nvme_path,
        pin_memory=pin_memory,
    )


def read_user_config(path: str) -> dict[str, Any]:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"strategy.deepspeed_config={path} does not exist; point it at a DeepSpeed JSON file")
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"strategy.deepspeed_config={path} is not valid JSON: {error}") from None


def merge(user: dict[str, Any], generated: dict[str, Any], source: str, check_batch: bool = True) -> dict[str, Any]:
    """The user's JSON with ftdist's keys filled in. Raises ValueError naming every key that contradicts.

    `check_batch=False` skips `train_batch_size`, which depends on the world size (unknown when a config is
    validated outside torchrun); it is checked again inside the job.
    """
    conflicts: list[str] = []
    merged = json.loads(json.dumps(user))  # deep copy
    _merge_into(merged, generated, "", conflicts, check_batch)
    if conflicts:
        raise ValueError(
            f"strategy.deepspeed_config={source} contradicts the run config: {'; '.join(conflicts)}. "
            "Remove these keys from the JSON (ftdist fills them from train: and precision:) or set them to "
            '"auto", or change the run config to match'
        )
    return merged


# Where each generated key comes from, for the error message.
ORIGIN = {
    "train_micro_batch_size_per_gpu": "train.micro_batch_size",
    "gradient_accumulation_steps": "train.grad_accum",
    "train_batch_size": "train.micro_batch_size x train.grad_accum x world size",
    "gradient_clipping": "train.grad_clip",
    "bf16.enabled": "precision",
    "fp16.enabled": "precision",
    "zero_optimization.stage": "strategy.zero_stage",
    "zero_optimization.offload_optimizer.device": "strategy.offload_optimizer",
    "zero_optimization.offload_param.device": "strategy.offload_param",
}


def _merge_into(target: dict, ours: dict, prefix: str, conflicts: list[str], check_batch: bool) -> None:
    for key, value in ours.items():
        path = f"{prefix}{key}"
        theirs = target.get(key, "auto")
        if isinstance(value, dict):
            if not isinstance(theirs, dict):
                theirs = {} if theirs == "auto" else theirs
            if isinstance(theirs, dict):
                target[key] = theirs
                _merge_into(theirs, value, path + ".", conflicts, check_batch)
                continue
        if path in ORIGIN and theirs != "auto" and theirs != value and (check_batch or key != "train_batch_size"):
            # A disabled section may be written as absent or false; compare the effective value.
            conflicts.append(f"{path} is {theirs!r} but {ORIGIN[path]} gives {value!r}")
        if theirs == "auto" or path in ORIGIN:
            target[key] = value
        # keys we only suggest (e.g. steps_per_print) stay as the user wrote them
        if key not in target:
            target[key] = value
