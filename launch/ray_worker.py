"""What runs inside each Ray Train worker: `ftdist.train` plus checkpoint registration with Ray.

The worker is the same training loop torchrun and Slurm reach. Two things are Ray's own:
- every sealed ftdist checkpoint is registered with `ray.train.report` (rank 0 passes the folder, the other
  ranks pass None; report is a barrier, so every rank calls it at the same step), and
- on a restart, `ray.train.get_checkpoint()` (the last registered checkpoint) becomes `checkpoint.resume`,
  so the loop restores weights, optimizer, RNG and data position and replays the same data order.
Rank and world size come from `ray.train.get_context()` through `ftdist.distributed.env.detect_env`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def worker_loop(loop_config: dict[str, Any]) -> None:
    """Ray Train's `train_loop_per_worker`: train the resolved config, resuming from Ray's checkpoint if any."""
    import ray.train

    from ftdist.trainer import train

    config = loop_config["config"]  # resolved by the driver: overrides are already applied
    # The final checkpoint was reported by the trainer (Result.checkpoint); `final/` sits in the run folder.
    context = ray.train.get_context()
    rank = context.get_world_rank()
    node = ray.get_runtime_context().get_node_id()
    print(f"ftdist: Ray Train worker rank {rank} of {context.get_world_size()} on node {node}", flush=True)
    report = CheckpointReporter(rank)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        result = train(config, on_checkpoint=report)
    else:
        # For local or shared storage this is the registered folder itself; for s3:// it is a download.
        with checkpoint.as_directory() as folder:
            if rank == 0:
                step = json.loads((Path(folder) / "MANIFEST.json").read_text())["step"]
                print(f"ftdist: Ray Train restarted the workers; resuming from {folder} (step {step})", flush=True)
            result = train(config, [f"checkpoint.resume={folder}"], report)
    if result.preempted:  # a signal stopped the loop after saving: let Ray restart the group from it
        raise RuntimeError(f"ftdist run preempted at step {result.step}; Ray Train restarts it from the checkpoint")


class CheckpointReporter:
    """The trainer's `on_checkpoint` callback under Ray: register each checkpoint and its metrics."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def __call__(self, step: int, folder: Path, metrics: dict[str, float]) -> None:
        import ray.train

        # Only rank 0 hands over the folder: with a shared output_dir it already holds every rank's shards,
        # and Ray would otherwise copy the same folder once per rank.
        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if self.rank == 0 else None
        ray.train.report(
            {"step": step, **{k: float(v) for k, v in metrics.items()}},
            checkpoint=checkpoint,
            delete_local_checkpoint_after_upload=False,  # ftdist's own folder stays; `latest` points at it
        )
