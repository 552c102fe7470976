"""`strategy:` how the work is spread over processes and devices: one typed section per strategy.

`strategy.name` picks the section (a pydantic discriminated union), so each strategy's settings exist only
under that strategy: `strategy.zero_stage` under `strategy: fsdp` is an unknown key, and the loader says it
is a deepspeed setting. These models check the file alone. Checks that need the world size, the device or
the installed packages are the strategy classes' `preflight` (ftdist/preflight.py), run by every launcher.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, Discriminator, Tag, model_validator

from ftdist.config.base import Section

Offload = Literal["none", "cpu", "nvme"]


class StrategySettings(Section):
    """What every strategy accepts."""

    name: str
    activation_checkpointing: bool | None = None
    """Recompute each decoder layer's activations in backward: less memory, about a third more compute.
    The one switch for every method and strategy; unset means on for `method: qlora`, off otherwise."""


class SingleSettings(StrategySettings):
    """`single`: one process on one device."""

    name: Literal["single"] = "single"


class DdpSettings(StrategySettings):
    """`ddp`: every rank holds the whole model; gradients are averaged in backward."""

    name: Literal["ddp"] = "ddp"


class FsdpSettings(StrategySettings):
    """`fsdp`: FSDP2; parameters, gradients and optimizer state sharded per decoder layer."""

    name: Literal["fsdp"] = "fsdp"
    reshard_after_forward: bool = True
    """Free the gathered layer parameters after forward (ZeRO-3-like); false keeps them (ZeRO-2-like)."""
    offload_param: Literal["none", "cpu"] = "none"
    """`cpu`: FSDP2's CPUOffloadPolicy (parameters, gradients and the optimizer step on CPU)."""


class DeepSpeedSettings(StrategySettings):
    """`deepspeed`: ZeRO stage 1/2/3 with optional CPU/NVMe offload."""

    name: Literal["deepspeed"] = "deepspeed"
    zero_stage: Literal[1, 2, 3] = 2
    """ZeRO stage: 1 shards optimizer state, 2 also gradients, 3 also parameters."""
    offload_optimizer: Offload = "none"
    """Keep optimizer state (and the step) on CPU or NVMe; the step then runs DeepSpeedCPUAdam on a GPU machine."""
    offload_param: Offload = "none"
    """Parameters on CPU/NVMe between uses (ZeRO-3 only)."""
    nvme_path: str | None = None
    """A fast local folder for `nvme` offload."""
    deepspeed_config: str | None = None
    """Your own JSON (e.g. cluster_configs/deepspeed/zero3.json). ftdist fills batch size, accumulation,
    clipping and precision from this run config and refuses values that contradict it."""

    @model_validator(mode="after")
    def _offload_is_possible(self) -> DeepSpeedSettings:
        if self.offload_param != "none" and self.zero_stage < 3:
            raise ValueError(
                f"strategy.offload_param={self.offload_param} needs strategy.zero_stage=3 (parameters are only "
                f"partitioned in ZeRO-3) but zero_stage={self.zero_stage}; set zero_stage: 3 or offload_param: none "
                "(offload_optimizer works with stage 1 and 2)"
            )
        if "nvme" in (self.offload_param, self.offload_optimizer) and not self.nvme_path:
            raise ValueError("strategy: nvme offload needs strategy.nvme_path, a folder on a fast local NVMe disk")
        return self


class AutoSettings(StrategySettings):
    """`auto`: the fit planner (ftdist/planner) picks the fastest strategy that fits this job's hardware when the
    run starts, and the run logs the choice and why. The method is never changed."""

    name: Literal["auto"] = "auto"


SETTINGS_BY_NAME: dict[str, type[StrategySettings]] = {
    "single": SingleSettings,
    "ddp": DdpSettings,
    "fsdp": FsdpSettings,
    "deepspeed": DeepSpeedSettings,
    "auto": AutoSettings,
}
"""The one table of strategy names: the config's union below is built from it, and a test holds
`ftdist.strategies.REGISTRY` (the classes) to the same names."""
STRATEGY_NAMES = tuple(SETTINGS_BY_NAME)


def _strategy_tag(data: Any) -> str:
    """The union member for raw input: `strategy: ddp`, `{name: ddp, ...}`, a model, or nothing (single)."""
    if isinstance(data, str):
        return data
    if isinstance(data, dict):
        return str(data.get("name", "single"))
    return getattr(data, "name", "single")


def _accept_bare_name(data: Any) -> Any:
    if isinstance(data, str):
        return {"name": data}
    if isinstance(data, dict) and "name" not in data:
        return {**data, "name": "single"}
    return data


StrategyConfig = Annotated[
    Union[tuple(Annotated[settings, Tag(name)] for name, settings in SETTINGS_BY_NAME.items())],  # noqa: UP007
    Discriminator(
        _strategy_tag,
        custom_error_type="unknown_strategy",
        custom_error_message=f"strategy.name must be one of {', '.join(STRATEGY_NAMES)}",
    ),
    BeforeValidator(_accept_bare_name),
]
"""The `strategy:` section: one of the models above, chosen by `name`."""


def owner_of(key: str) -> str | None:
    """The strategy whose section has `key` (for "zero_stage is a deepspeed setting")."""
    owners = [name for name, model in SETTINGS_BY_NAME.items() if key in model.model_fields]
    return " or ".join(owners) if owners and len(owners) < len(SETTINGS_BY_NAME) else None
