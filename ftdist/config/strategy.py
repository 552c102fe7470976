"""`strategy:` how the work is spread over processes and devices.

Checks that need only this section live here; checks that span sections (a DeepSpeed JSON against the
batch shape, 4-bit bases under sharding) live in `RunConfig`. Both run before any process group starts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from ftdist.config.base import NamedSection

Offload = Literal["none", "cpu", "nvme"]

# Keys that only one strategy reads: setting one under another strategy is an error, not a silent no-op.
DEEPSPEED_ONLY = ("zero_stage", "offload_optimizer", "deepspeed_config", "nvme_path")
FSDP_ONLY = ("reshard_after_forward",)


class StrategyConfig(NamedSection):
    """The distribution strategy. Write `strategy: ddp` or `strategy: {name: deepspeed, zero_stage: 3}`."""

    name: Literal["single", "ddp", "fsdp", "deepspeed"] = "single"
    """`single`: one process on one device. `ddp`: every rank holds the whole model, gradients are averaged.
    `fsdp`: FSDP2, parameters, gradients and optimizer state sharded per decoder layer. `deepspeed`: ZeRO
    stage 1/2/3 with optional CPU/NVMe offload."""
    zero_stage: Literal[1, 2, 3] = 2
    """DeepSpeed ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also parameters."""
    offload_optimizer: Offload = "none"
    """DeepSpeed: keep optimizer state (and the step) on CPU or NVMe; the step then runs DeepSpeedCPUAdam."""
    offload_param: Offload = "none"
    """Parameters on CPU/NVMe between uses. DeepSpeed: ZeRO-3 only. FSDP: `cpu` (FSDP2 CPUOffloadPolicy,
    which also keeps gradients and the optimizer step on CPU)."""
    nvme_path: str | None = None
    """DeepSpeed: a fast local folder for `nvme` offload."""
    deepspeed_config: str | None = None
    """DeepSpeed: your own JSON (e.g. cluster_configs/deepspeed/zero3.json). ftdist fills batch size,
    accumulation, clipping and precision from this run config and refuses values that contradict it."""
    activation_checkpointing: bool | None = None
    """Recompute each decoder layer's activations in backward: less memory, about a third more compute.
    The one switch for every method and strategy; unset means on for `method: qlora`, off otherwise."""
    reshard_after_forward: bool = True
    """FSDP: free the gathered layer parameters after forward (ZeRO-3-like); false keeps them (ZeRO-2-like)."""

    @model_validator(mode="after")
    def _keys_match_strategy(self) -> StrategyConfig:
        for keys, owner in ((DEEPSPEED_ONLY, "deepspeed"), (FSDP_ONLY, "fsdp")):
            # Compared with the default, not `model_fields_set`: a saved config.yaml writes every key out.
            stray = [key for key in keys if getattr(self, key) != type(self).model_fields[key].default]
            stray = stray if self.name != owner else []
            if stray:
                raise ValueError(
                    f"strategy.{stray[0]} is a {owner} setting but strategy.name={self.name}; "
                    f"remove it or set strategy.name={owner}"
                )
        if self.offload_param != "none" and self.name not in ("deepspeed", "fsdp"):
            raise ValueError(
                f"strategy.offload_param={self.offload_param} needs strategy.name=deepspeed (zero_stage: 3) or fsdp"
            )
        return self

    @model_validator(mode="after")
    def _offload_is_possible(self) -> StrategyConfig:
        if self.name == "deepspeed" and self.offload_param != "none" and self.zero_stage < 3:
            raise ValueError(
                f"strategy.offload_param={self.offload_param} needs strategy.zero_stage=3 (parameters are only "
                f"partitioned in ZeRO-3) but zero_stage={self.zero_stage}; set zero_stage: 3 or offload_param: none "
                "(offload_optimizer works with stage 1 and 2)"
            )
        if self.name == "deepspeed" and "nvme" in (self.offload_param, self.offload_optimizer) and not self.nvme_path:
            raise ValueError("strategy: nvme offload needs strategy.nvme_path, a folder on a fast local NVMe disk")
        if self.name == "fsdp" and self.offload_param == "nvme":
            raise ValueError("strategy.offload_param=nvme is DeepSpeed-only; FSDP offloads to cpu only")
        return self
