"""Every launcher's profile, in one place and one shape: a flat typed model whose fields are also flags.

A profile file (`cluster_configs/<launcher>/*.yaml`) holds some of these keys; `--flag value` on the command
line overrides it; the run config (model, data, method, strategy ...) never holds them, so the same run config
runs under every launcher.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt, field_validator

from launch.base import LauncherProfile


class LocalProfile(LauncherProfile):
    """torchrun on this machine (or on each node of several)."""

    nproc: PositiveInt | None = None
    """Processes on this node (default: the GPUs here, or 1)."""
    nnodes: PositiveInt = 1
    """Nodes in the job (multi-node: run the command on each node)."""
    node_rank: NonNegativeInt = 0
    """This node's index, 0..nnodes-1."""
    master_addr: str = "127.0.0.1"
    """Address of node 0 (multi-node)."""
    master_port: int | None = None
    """Port on node 0 (default: a free port; multi-node runs must give the same one on every node)."""


class SlurmProfile(LauncherProfile):
    """A site's Slurm resources for one job (see cluster_configs/slurm/default.yaml)."""

    shipped_folder: ClassVar[str] = "cluster_configs/slurm"

    partition: str | None = None
    """Slurm partition."""
    account: str | None = None
    """Account to charge."""
    qos: str | None = None
    """Quality of service."""
    nodes: PositiveInt = 1
    """Number of nodes."""
    gpus_per_node: NonNegativeInt = 0
    """GPUs per node (one task per GPU)."""
    tasks_per_node: PositiveInt | None = None
    """Tasks per node (default: one per GPU, or 1)."""
    cpus_per_task: PositiveInt | None = None
    """CPUs per task."""
    mem_gb: NonNegativeFloat | None = None
    """Memory per node in GiB (--mem); unset: planned from the config, 0: the partition's default.
    The plan's host memory per node with 20% headroom plus 4 GiB per task (launch/slurm_preview.py)."""
    gpu: str | None = None
    """GPU kind, a `ftdist plan --gpu` preset (a100-80, t4, ...), for preflight's precision check and the plan.
    Unset: preflight cannot check bf16, and the plan assumes an A100 80GB."""
    wckey: str | None = None
    """Slurm workload characterization key (--wckey); none unless your site asks for one."""
    time: int | str = 60
    """Time limit: minutes or [D-]HH:MM:SS."""
    signal_delay_s: NonNegativeInt = 120
    """Seconds before the time limit at which Slurm signals the job to save and requeue."""
    max_num_timeout: NonNegativeInt = 3
    """Requeues after a time-out that submitit allows."""
    folder: str = "slurm/logs/submitit"
    """Where submitit keeps the job's pickles and logs (%j: the job id)."""
    setup: list[str] = []
    """Shell lines run in the sbatch script before the training step (module load ..., source venv)."""
    additional: dict[str, Any] = {}
    """Extra sbatch options, e.g. {constraint: a100}."""

    @field_validator("time")
    @classmethod
    def _minutes(cls, value: int | str) -> int:
        return parse_minutes(value)

    @property
    def tasks(self) -> int:
        return self.tasks_per_node or max(self.gpus_per_node, 1)

    def sbatch_parameters(self, job_name: str, mem: str | None = None, command: str | None = None) -> dict[str, Any]:
        """The keyword arguments of submitit's SlurmExecutor (the names of its sbatch template). `mem`: the
        planned --mem when the profile sets none; `command`: what each task runs, written into the script as a
        comment (submitit's own command line only names a pickle)."""
        setup = [f"# each task runs: {command}"] if command else []
        params: dict[str, Any] = {
            "job_name": job_name,
            "wckey": self.wckey,  # None: no --wckey line (submitit would add --wckey=submitit)
            "nodes": self.nodes,
            "ntasks_per_node": self.tasks,
            "time": self.time,
            "signal_delay_s": self.signal_delay_s,
            "stderr_to_stdout": True,
            "additional_parameters": {"requeue": True, **self.additional},
        }
        optional = {
            "partition": self.partition,
            "account": self.account,
            "qos": self.qos,
            "gpus_per_node": self.gpus_per_node or None,
            "cpus_per_task": self.cpus_per_task,
            "mem": f"{self.mem_gb:g}G" if self.mem_gb else (mem if self.mem_gb is None else None),
            "setup": [*setup, *self.setup] or None,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        return params


class RayProfile(LauncherProfile):
    """Ray Train scaling, storage and fault tolerance (maps onto ScalingConfig, RunConfig and FailureConfig)."""

    shipped_folder: ClassVar[str] = "cluster_configs/ray"

    workers: PositiveInt = 1
    """Training processes (one per GPU on a GPU cluster)."""
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
    """Where Ray keeps the registered checkpoints (a shared folder or s3:// / gs:// URI); default <output_dir>/ray."""
    health_check_interval_s: PositiveFloat = 0.5
    """How often the Ray Train controller polls workers; each checkpoint report waits up to this long (Ray's
    default, 2 s, dominates short runs). Sets RAY_TRAIN_HEALTH_CHECK_INTERVAL_S unless already set."""
    check_resources: bool = True
    """Refuse to start when the cluster cannot hold the workers; turn off on autoscaling clusters."""
    capacity_timeout_s: NonNegativeFloat = 0.0
    """After a node leaves mid-run: stop the job once the workers have not fitted on the live nodes for this
    many seconds; 0 waits for a node to join without limit (Ray's own behaviour)."""

    def resources(self) -> dict[str, float]:
        """One worker's Ray resource request (ScalingConfig.resources_per_worker)."""
        wanted: dict[str, float] = {"CPU": self.cpus_per_worker, **self.resources_per_worker}
        if self.use_gpu:
            wanted["GPU"] = self.gpus_per_worker
        if self.memory_per_worker_gb:
            wanted["memory"] = self.memory_per_worker_gb * 2**30
        return wanted


def parse_minutes(value: int | str) -> int:
    """Slurm time (`90`, `1:30:00`, `2-00:00:00`) as whole minutes, the unit submitit takes."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")] if clock and all(p.isdigit() for p in clock.split(":")) else []
    if not parts or len(parts) > 3 or (days and not days.isdigit()):
        raise ValueError(f"time={value!r} is not a Slurm time; write minutes (90) or [D-]HH:MM:SS (1:30:00)")
    if len(parts) == 1:
        minutes = parts[0]
    else:
        hours, mins = parts[0], parts[1]
        minutes = hours * 60 + mins + (1 if len(parts) == 3 and parts[2] else 0)
    return minutes + (int(days) * 24 * 60 if days else 0)
