"""What this process computes on: the device (cuda > mps > cpu), the numeric precision, and the CPU threads.

One rule each, shared by every launcher path, so the same config on the same allocation gives the same numbers
under `ftdist train`, `ftdist launch local|slurm|ray` and the sbatch scripts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ftdist.errors import FtdistError


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


def use_cpu_threads_for(model: torch.nn.Module, device: torch.device) -> None:
    """Set this process's intra-op threads by `pick_cpu_threads` for `model`'s width, in commands that only run
    a model (generate, eval). Without it a tiny model splits its small ops over every core and waits for each:
    `ftdist generate` on the tiny SQL GPT took 3.8 s for 32 tokens on a busy 2-core machine."""
    width = getattr(getattr(model, "config", None), "hidden_size", None)
    threads = pick_cpu_threads(device, width)
    if threads is not None:
        torch.set_num_threads(threads)
