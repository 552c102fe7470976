"""Where this process runs: rank and world size (from torchrun, Slurm or Ray), device, and numeric precision.

Every launcher ends in the same worker function; this module is the one place that reads the launcher's
environment variables, so the trainer never asks which launcher started it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from ftdist.errors import FtdistError
from ftdist.rendezvous import slurm_rendezvous

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


def pick_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """cuda > mps > cpu for `auto`; an explicit choice that this machine lacks is an error, not a fallback."""
    available = {"cuda": torch.cuda.is_available(), "mps": _mps_available(), "cpu": True}
    if requested == "auto":
        requested = next(name for name in ("cuda", "mps", "cpu") if available[name])
    if not available[requested]:
        have = ", ".join(name for name, ok in available.items() if ok)
        raise FtdistError(
            f"device: {requested} was requested but this machine has no {requested}; "
            f"available here: {have}. Set device: auto or device: cpu"
        )
    # DeepSpeed guesses its accelerator (and warns "Setting accelerator to CPU") whenever anything imports it,
    # which transformers' save_pretrained does even in a single-device run: tell it what was picked instead.
    if requested in ("cuda", "cpu"):
        os.environ.setdefault("DS_ACCELERATOR", requested)
    if requested == "cuda":
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device(requested)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


@dataclass(frozen=True)
class Precision:
    """How numbers are stored and computed: parameters stay fp32; `autocast` runs matmuls in lower precision."""

    name: str  # "fp32" | "bf16" | "fp16"
    autocast_dtype: torch.dtype | None
    grad_scaler: bool  # fp16 needs loss scaling; bf16 has fp32's exponent range and does not

    @property
    def dtype(self) -> torch.dtype:
        return self.autocast_dtype or torch.float32


BF16_MIN_WIDTH = 256
"""Hidden size from which bf16 autocast beats fp32 on a CPU with AMX / AVX512-BF16. Measured with
benchmarks/cpu_bf16_threshold.py (docs/speed.md): below it the casts cost more than the faster matmuls save."""


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX-BF16 or AVX512-BF16), as torch's oneDNN sees it."""
    if torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported"):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def pick_precision(requested: str, device: torch.device, model_width: int | None = None) -> Precision:
    """bf16 on CUDA with bf16, fp16 + scaler on older CUDA, fp32 on MPS (several ops lack bf16).

    On a CPU `auto` picks bf16 autocast (weights, grads and optimizer state stay fp32) when the CPU has AMX or
    AVX512-BF16 and the model's hidden size (`model_width`) is at least BF16_MIN_WIDTH; smaller models (the
    tiny SQL GPT) and an unknown size stay fp32, where the casts would cost more than they save.
    `precision: bf16` turns autocast on regardless.
    """
    if requested == "auto":
        if device.type == "cuda":
            requested = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "cpu" and (model_width or 0) >= BF16_MIN_WIDTH and cpu_has_fast_bf16():
            requested = "bf16"
        else:
            requested = "fp32"
    if requested == "fp32":
        return Precision("fp32", None, False)
    if requested == "fp16" and device.type != "cuda":
        raise FtdistError(
            f"precision: fp16 needs a CUDA GPU (loss scaling is CUDA-only here), but the device is "
            f"{device.type}; use precision: bf16 or fp32"
        )
    if requested == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise FtdistError("precision: bf16 is not supported by this GPU (pre-Ampere); use precision: fp16 or auto")
    if requested == "bf16" and device.type == "mps":
        raise FtdistError("precision: bf16 is unsafe on Apple MPS (several ops lack bf16 kernels); use fp32 or auto")
    dtype = torch.bfloat16 if requested == "bf16" else torch.float16
    return Precision(requested, dtype, requested == "fp16")


USER_THREADS_ENV = "FTDIST_OMP_NUM_THREADS"
"""The OMP_NUM_THREADS the user launched with ('' = not set). torchrun and Ray set OMP_NUM_THREADS in every
worker themselves, so ftdist's launchers pass the user's own value on under this name (`launcher_thread_env`)."""
CPUS_ENV = "FTDIST_CPUS_PER_PROCESS"
"""CPUs allocated to each worker, set by launchers whose allocation no variable shows (Ray's cpus_per_worker)."""


def pick_cpu_threads(device: torch.device, model_width: int | None, environ=None) -> int | None:
    """Intra-op threads of one CPU process (None on a GPU): the one rule every launcher path ends in.

    1. OMP_NUM_THREADS, if the user set it (as seen by the launcher: `USER_THREADS_ENV`);
    2. else 1 for a model narrower than BF16_MIN_WIDTH: its matrices are too small to split across cores, and
       every op hands work to each thread and waits for all of them; when other processes share the cores each
       op waits for every thread to be scheduled again (the tiny SQL GPT's step measured 6-30x faster on 1
       thread than on 2 on a loaded 2-core machine, docs/speed.md);
    3. else the CPUs allocated to this process (`cpus_per_process`).
    So the same config on the same allocation computes on the same threads, and gives the same numbers, under
    `ftdist train`, `ftdist launch local|slurm|ray` and the sbatch scripts.
    """
    environ = os.environ if environ is None else environ
    if device.type != "cpu":
        return None
    chosen = environ[USER_THREADS_ENV] if USER_THREADS_ENV in environ else environ.get("OMP_NUM_THREADS", "")
    if chosen.strip():
        if not chosen.strip().isdigit() or int(chosen) < 1:
            raise FtdistError(f"OMP_NUM_THREADS={chosen!r} is not a whole number >= 1; unset it or set e.g. 4")
        return int(chosen)
    if model_width is not None and model_width < BF16_MIN_WIDTH:
        return 1
    return cpus_per_process(environ)


def cpus_per_process(environ) -> int:
    """The CPUs of this process's allocation: the launcher's per-worker CPUs (Ray), else the Slurm task's
    SLURM_CPUS_PER_TASK, else the CPUs this process may run on; shared by the processes torchrun started from
    that allocation (LOCAL_WORLD_SIZE). At least 1."""
    if environ.get(CPUS_ENV):
        return max(1, int(float(environ[CPUS_ENV])))
    if environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        cpus = int(environ["SLURM_CPUS_PER_TASK"])
    else:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    sharing = environ.get("LOCAL_WORLD_SIZE", "1")
    return max(1, cpus // max(1, int(sharing) if sharing.isdigit() else 1))


def launcher_thread_env(environ=None, cpus_per_worker: float | None = None) -> dict[str, str]:
    """What a launcher adds to its workers' environment so `pick_cpu_threads` sees the user's choice (and,
    for Ray, the allocation); OMP_NUM_THREADS=1 only keeps torchrun from warning that it sets it."""
    environ = os.environ if environ is None else environ
    user = environ[USER_THREADS_ENV] if USER_THREADS_ENV in environ else environ.get("OMP_NUM_THREADS", "")
    added = {USER_THREADS_ENV: user, "OMP_NUM_THREADS": environ.get("OMP_NUM_THREADS", "1")}
    if cpus_per_worker is not None:
        added[CPUS_ENV] = str(max(1, int(cpus_per_worker)))
    return added


def init_distributed(env: DistEnv, device: torch.device, timeout_s: int = 1800, always: bool = False) -> None:
    """Join the process group (nccl on GPU, gloo on CPU) unless this is a single process or already joined.

    `always`: a single process gets a 1-rank group too (FSDP and DeepSpeed need one, e.g. to resume a sharded
    checkpoint on one process)."""
    if dist.is_initialized() or not (env.distributed or always):
        return
    if not env.distributed:
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    if env.launcher == "slurm" and not ("MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ):
        # one srun task per process, no torchrun: derive the rendezvous from the job
        for name, value in slurm_rendezvous(os.environ).items():
            os.environ.setdefault(name, value)
        for name, value in (("RANK", env.rank), ("WORLD_SIZE", env.world_size), ("LOCAL_RANK", env.local_rank)):
            os.environ.setdefault(name, str(value))  # DeepSpeed and accelerate read these
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=env.rank, world_size=env.world_size, timeout=timedelta(seconds=timeout_s))


def shutdown_distributed() -> None:
    """barrier + destroy: without it DeepSpeed on gloo aborts at exit in about 3 runs of 10.

    The pause releases the GIL so that gloo's worker threads can free the works they finished: freeing one
    drops its tensors' Python objects, which needs the GIL. Without it a rank could hang for good at exit: the
    main thread, holding the GIL, destroyed the DDP reducer, whose ~ProcessGroupGloo joined a worker thread
    that was waiting for the GIL in ~AsyncBarrierWork (py-spy --native, one CI run of qlora x ddp)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        time.sleep(0.05)
        dist.destroy_process_group()


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if `flag` is true on any rank (an all-reduce of the flag)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    backend_device = device if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([1 if flag else 0], device=backend_device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def free_port() -> int:
    """A free TCP port on this host, for single-node rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
