"""`preflight(config, world)`: the checks that depend on the job, not on the file.

The config schema (`ftdist.config`) validates a YAML file alone. Whether that file can run depends on where
it runs: how many processes, on which device, with which packages installed. Those checks belong to the
strategy and method classes (`Strategy.preflight`, `Method.preflight`); this module only collects them.
Every launcher calls it with the world it is about to start, before it submits anything (so a Slurm or Ray job
with a bad combination is refused on the login node), and every worker calls it again with the world it found.
What the device can run (optimizer, precision, quantization, processes per Apple GPU) is `ftdist.device_rules`,
which `ftdist plan` asks too; with `files=True` (launchers and `ftdist validate`) the files the config names must
exist here (`ftdist.config.files`).
"""

from __future__ import annotations

from dataclasses import dataclass

from ftdist.errors import ConfigError


@dataclass(frozen=True)
class World:
    """The job a config is about to run in."""

    size: int = 1
    """Processes in the job (all nodes)."""
    device: str = "cpu"
    """The device type each process computes on: cuda | mps | cpu."""
    nodes: int = 1
    gpu: str | None = None
    """The GPU kind, a `ftdist plan --gpu` preset name (t4, a100-80, ...), when known: bf16 is checked against it."""

    def __str__(self) -> str:
        nodes = f" on {self.nodes} nodes" if self.nodes > 1 else ""
        return f"{self.size} process{'es' if self.size != 1 else ''} on {self.device}{nodes}"


def preflight(config, world: World, files: bool = False) -> None:
    """Raise one ConfigError listing every problem of running `config` in `world` (and, with `files`, every file
    it names that is missing here); return None if it can run."""
    problems = preflight_problems(config, world)
    if files:
        from ftdist.config.files import file_problems

        problems += file_problems(config)
    if problems:
        raise ConfigError(f"{config.name} cannot run as {world}: " + " ".join(problems))


def preflight_problems(config, world: World) -> list[str]:
    """The problems of running `config` in `world`, one sentence each: strategy, method, then device."""
    from ftdist.device_rules import device_problems
    from ftdist.methods import method_class
    from ftdist.strategies import strategy_class

    problems = []
    if config.strategy.name != "auto":  # auto is resolved where the hardware is known: `resolve_auto_strategy`
        problems += strategy_class(config.strategy.name).preflight(config, world)
    problems += method_class(config.method.weights).preflight(config, world)
    return problems + device_problems(device_job(config, world))


def device_job(config, world: World):
    """The `ftdist.device_rules.DeviceJob` of running `config` in `world`."""
    from ftdist.device_rules import DeviceJob

    gpu = None
    if world.gpu and world.device == "cuda":
        from ftdist.planner.hardware import preset

        gpu = preset(world.gpu)
    return DeviceJob(
        method=config.method.weights,
        optimizer=config.optim.name,
        precision=config.precision,
        device=world.device,
        processes=world.size,
        gpu_name=gpu.name if gpu else None,
        gpu_bf16=gpu.bf16 if gpu else None,
        optimizer_fallback=config.optim.on_unsupported == "fallback",
    )


def device_of(config, gpus: int) -> str:
    """The device type a launcher will get, from the config's `device` and the GPUs it asks for."""
    if config.device != "auto":
        return config.device
    return "cuda" if gpus > 0 else "cpu"


def resolve_auto_strategy(config, world: World, hardware) -> tuple[object, str | None]:
    """(config, why): `strategy: auto` replaced by the planner's pick for this world and hardware (a
    `ftdist.planner.hardware.Hardware` or a preset name); any other config comes back as it is, with None."""
    if config.strategy.name != "auto":
        return config, None
    from ftdist.planner import recommend_for_config

    section, reason = recommend_for_config(config, world.size, hardware)
    raw = config.model_dump(mode="json")
    raw["strategy"] = section
    return type(config).model_validate(raw), f"strategy: auto chose {section['name']}: {reason}"
