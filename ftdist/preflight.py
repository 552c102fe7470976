"""`preflight(config, world)`: the checks that depend on the job, not on the file.

The config schema (`ftdist.config`) validates a YAML file alone. Whether that file can run depends on where
it runs: how many processes, on which device, with which packages installed. Those checks belong to the
strategy and method classes (`Strategy.preflight`, `Method.preflight`); this module only collects them.
Every launcher calls it with the world it is about to start, before it submits anything (so a Slurm or Ray job
with a bad combination is refused on the login node), and every worker calls it again with the world it found.
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

    def __str__(self) -> str:
        nodes = f" on {self.nodes} nodes" if self.nodes > 1 else ""
        return f"{self.size} process{'es' if self.size != 1 else ''} on {self.device}{nodes}"


def preflight(config, world: World) -> None:
    """Raise one ConfigError listing every problem of running `config` in `world`; return None if it can run."""
    from ftdist.methods import method_class
    from ftdist.strategies import strategy_class

    problems = method_class(config.method.name).preflight(config, world)
    if config.strategy.name != "auto":  # auto is resolved where the hardware is known: `resolve_auto_strategy`
        problems = strategy_class(config.strategy.name).preflight(config, world) + problems
    if problems:
        raise ConfigError(f"{config.name} cannot run as {world}: " + " ".join(problems))


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
