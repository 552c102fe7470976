"""`ray:` how `ftdist launch ray` places the workers of a run on a Ray cluster. Ignored by every other launcher.

The section lives in the RunConfig so one YAML carries the whole job; a profile in `cluster_configs/ray/`
(a file holding only a `ray:` section) can replace it per cluster without touching the run config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt

from ftdist.config.base import Section


class RayConfig(Section):
    """Ray Train scaling, storage and fault tolerance (maps onto ScalingConfig, RunConfig and FailureConfig)."""

    num_workers: PositiveInt = 1
    """Training processes (one per GPU on a GPU cluster); `--workers N` overrides it."""
    use_gpu: bool = False
    """Give each worker GPUs (`gpus_per_worker`) and use NCCL; false runs CPU workers with gloo."""
    cpus_per_worker: PositiveFloat = 1.0
    """CPU cores Ray reserves for each worker."""
    gpus_per_worker: NonNegativeFloat = 1.0
    """GPUs per worker when `use_gpu` is true."""
    memory_per_worker_gb: NonNegativeFloat = 0.0
    """Memory Ray reserves for each worker, in GiB; 0 reserves none."""
    resources_per_worker: dict[str, float] = {}
    """Extra custom resources per worker, e.g. {accelerator_type:H100: 0.001}."""
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    """How worker bundles are spread over nodes (Ray placement group strategy)."""
    max_failures: NonNegativeInt = 1
    """Worker-group restarts Ray Train allows before the job fails; each resumes from the last checkpoint."""
    storage_path: str | None = None
    """Where Ray keeps the registered checkpoints (a shared folder or s3:// / gs:// URI); default
    `<output_dir>/ray`."""
    health_check_interval_s: PositiveFloat = 0.5
    """How often the Ray Train controller polls workers; each checkpoint report waits up to this long
    (Ray's default, 2 s, dominates short runs). Sets RAY_TRAIN_HEALTH_CHECK_INTERVAL_S unless already set."""
    check_resources: bool = True
    """Refuse to start when the cluster cannot hold the workers; turn off on autoscaling clusters."""

    def resources(self) -> dict[str, float]:
        """One worker's Ray resource request (ScalingConfig.resources_per_worker)."""
        wanted: dict[str, float] = {"CPU": self.cpus_per_worker, **self.resources_per_worker}
        if self.use_gpu:
            wanted["GPU"] = self.gpus_per_worker
        if self.memory_per_worker_gb:
            wanted["memory"] = self.memory_per_worker_gb * 2**30
        return wanted
