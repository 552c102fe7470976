"""Distribution strategies, one file each behind `Strategy`, and the registry that finds them.

Imported lazily so `single` needs no DeepSpeed. Every question about a checkpoint folder ("which format is
this?", "give me its weights", "can this run resume from it?") is answered by looping over the registry and
asking each strategy class: the formats themselves are known only to their own files.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ftdist.distributed.device import Precision
from ftdist.distributed.env import DistEnv
from ftdist.errors import FtdistError
from ftdist.methods.base import StateFilter
from ftdist.registry import Registry
from ftdist.strategies.base import Strategy

# A new strategy is a new file and one line here. `strategy_class(name)` -> the Strategy subclass.
REGISTRY = Registry(
    single="ftdist.strategies.single:SingleDevice",
    ddp="ftdist.strategies.ddp:DataParallel",
    fsdp="ftdist.strategies.fsdp:FullyShardedDataParallel",
    deepspeed="ftdist.strategies.deepspeed:DeepSpeedZero",
)
strategy_class = REGISTRY.load


def build_strategy(
    config, env: DistEnv, device: torch.device, precision: Precision, state_filter: StateFilter = StateFilter()
) -> Strategy:
    return strategy_class(config.strategy.name)(config, env, device, precision, state_filter)


def checkpoint_owner(folder: str | Path) -> type[Strategy]:
    """The strategy class whose format `folder` is in; an FtdistError naming the known layouts otherwise."""
    folder = Path(folder)
    classes = [strategy_class(name) for name in REGISTRY]
    for cls in classes:
        if cls.owns(folder):
            return cls
    layouts = "; ".join(f"{_writers(cls.checkpoint_format)}: {cls.layout}" for cls in _one_per_format(classes))
    raise FtdistError(
        f"{folder} is not an ftdist checkpoint this version can read (looked for {layouts}); "
        "point at a folder like runs/<name>/checkpoints/step-<N>"
    )


def read_checkpoint_state(folder: str | Path) -> dict[str, torch.Tensor]:
    """Any strategy's checkpoint as one state dict on CPU, offline (no process group, no GPU)."""
    return checkpoint_owner(folder).read_full_state(Path(folder))


def is_checkpoint(folder: str | Path) -> bool:
    try:
        checkpoint_owner(folder)
    except FtdistError:
        return False
    return True


def check_resumable(config, folder: Path, world_size: int) -> None:
    """Refuse, before any model is loaded and with the fix, a checkpoint this run's strategy cannot resume."""
    found, wanted = checkpoint_owner(folder), strategy_class(config.strategy.name)
    if found.checkpoint_format != wanted.checkpoint_format:
        writers = _writers(found.checkpoint_format)
        raise FtdistError(
            f"checkpoint {folder} was written by strategy {writers}, but this run uses strategy "
            f"{config.strategy.name}, which cannot load it; resume with strategy.name={writers.split(' or ')[0]}, "
            "or start a new output_dir from its weights (ftdist export, then model.path=<the exported folder>)"
        )
    written_on = found.read_record(folder).get("world_size")
    if not found.any_world_size and written_on is not None and written_on != world_size:
        raise FtdistError(
            f"checkpoint {folder} was written by {written_on} ranks in strategy {config.strategy.name}'s format, "
            f"which resumes only on the same number of ranks, but this job has {world_size}; start it with "
            f"{written_on} processes (ftdist launch local --nproc {written_on}, or torchrun --nproc_per_node "
            f"{written_on}), or export it (ftdist export) and start a new run from the exported model"
        )


def _one_per_format(classes: list[type[Strategy]]) -> list[type[Strategy]]:
    seen: dict[str, type[Strategy]] = {}
    for cls in classes:
        seen.setdefault(cls.checkpoint_format, cls)
    return list(seen.values())


def _writers(checkpoint_format: str) -> str:
    """`single or ddp`: the strategies that write a format."""
    return " or ".join(name for name in REGISTRY if strategy_class(name).checkpoint_format == checkpoint_format)


__all__ = [
    "REGISTRY",
    "Strategy",
    "build_strategy",
    "check_resumable",
    "checkpoint_owner",
    "is_checkpoint",
    "read_checkpoint_state",
    "strategy_class",
]
