"""Where this process sits in its job: rank, world size, local and node rank, from torchrun, Slurm or Ray.

Every launcher ends in the same worker function; this module is the one place that reads the launchers'
rank variables, so the trainer never asks which launcher started it.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

# Which variables each launcher sets, in the order they are tried. torchrun wins over Slurm because
# `srun torchrun ...` sets both, and torchrun's are the per-worker ones.
LAUNCHER_VARIABLES: dict[str, dict[str, str]] = {
    "torchrun": {"rank": "RANK", "world_size": "WORLD_SIZE", "local_rank": "LOCAL_RANK", "node_rank": "GROUP_RANK"},
    "slurm": {
        "rank": "SLURM_PROCID",
        "world_size": "SLURM_NTASKS",
        "local_rank": "SLURM_LOCALID",
        "node_rank": "SLURM_NODEID",
    },
}


@dataclass(frozen=True)
class DistEnv:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    node_rank: int = 0
    launcher: str = "single"
    restart_count: int = 0  # SLURM_RESTART_COUNT: how often Slurm requeued this job (0 on the first run)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def detect_env(environ: dict[str, str] | None = None) -> DistEnv:
    """Read rank and world size from whichever launcher set them; a plain `python` run is rank 0 of 1."""
    if environ is None:
        ray_env = ray_train_env()
        if ray_env is not None:  # Ray also sets RANK/WORLD_SIZE, but its own context is the source of truth
            return ray_env
    environ = os.environ if environ is None else environ
    restarts = int(environ.get("SLURM_RESTART_COUNT", 0) or 0)
    for launcher, names in LAUNCHER_VARIABLES.items():
        if names["rank"] in environ and names["world_size"] in environ:
            if launcher == "slurm" and int(environ["SLURM_NTASKS"]) == 1:
                continue  # `sbatch` with one task: behave as a plain single-process run
            return DistEnv(
                rank=int(environ[names["rank"]]),
                world_size=int(environ[names["world_size"]]),
                local_rank=int(environ.get(names["local_rank"], 0)),
                node_rank=int(environ.get(names["node_rank"], 0)),
                launcher=launcher,
                restart_count=restarts,
            )
    return DistEnv(restart_count=restarts)


def ray_train_env() -> DistEnv | None:
    """This worker's place from `ray.train.get_context()`, or None outside a Ray Train worker.

    A Ray Train worker has imported ray before it runs the training function, so `ray` missing from
    `sys.modules` means "not Ray" without paying for `import ray` (seconds) in every other launcher.
    """
    if "ray.train" not in sys.modules:
        return None
    try:
        from ray.train import get_context

        context = get_context()
        rank, world_size = context.get_world_rank(), context.get_world_size()
    except Exception:  # ray imported, but this is the driver or a plain Ray task: no train context
        return None
    return DistEnv(
        rank=rank,
        world_size=world_size,
        local_rank=context.get_local_rank(),
        node_rank=context.get_node_rank(),
        launcher="ray",
    )
