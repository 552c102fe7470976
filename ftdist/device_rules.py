"""Which method, optimizer and precision a device can run: the one rule that preflight and the planner share.

`preflight` asks it for the job a launcher is about to start; `ftdist plan` asks it for every row and every
suggestion, so the planner never recommends what preflight would refuse (QLoRA on Apple silicon, eight Apple
GPUs in one job, bf16 on a T4). Nothing here imports torch: the facts come in as plain values.
"""

from __future__ import annotations

from dataclasses import dataclass

BITSANDBYTES_OPTIMIZERS = ("adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit")


@dataclass(frozen=True)
class DeviceJob:
    """What a job asks of its devices, and which devices they are."""

    method: str  # pretrain | full | lora | qlora
    optimizer: str  # optim.name
    precision: str  # auto | fp32 | bf16 | fp16
    device: str  # cuda | mps | cpu
    processes: int = 1
    gpu_name: str | None = None  # e.g. "T4 16GB", when the GPU kind is known
    gpu_bf16: bool | None = None  # whether that GPU has bf16; None: not known here
    optimizer_fallback: bool = False  # optim.on_unsupported: fallback


def device_problems(job: DeviceJob) -> list[str]:
    """One sentence per thing `job.device` cannot do for this job, each with its fix; [] when it can run."""
    problems = []
    if job.device == "mps" and job.processes > 1:
        problems.append(
            f"Apple MPS runs one training process per machine (no collective backend for MPS tensors), but this "
            f"job has {job.processes}; run one process, or use CUDA GPUs for several."
        )
    if job.method == "qlora" and job.device == "mps":
        problems.append(
            "method: qlora needs bitsandbytes, which has no MPS backend; use device: cpu or cuda, or method: lora."
        )
    if job.optimizer in BITSANDBYTES_OPTIMIZERS and job.device == "mps":
        problems.append(
            f"optim.name={job.optimizer} needs bitsandbytes, which has no MPS backend; use optim.name=adamw."
        )
    elif job.optimizer.startswith("paged_") and job.device != "cuda" and not job.optimizer_fallback:
        problems.append(paged_needs_cuda(job.optimizer, job.device) + ".")
    problems.extend(_precision_problems(job))
    return problems


def paged_needs_cuda(optimizer: str, device: str) -> str:
    """The sentence (without its full stop) for a paged optimizer on a device without CUDA unified memory."""
    return (
        f"optim.name={optimizer} pages optimizer state through CUDA unified memory, which {device} does not have; "
        f"use optim.name={optimizer.removeprefix('paged_')} (unpaged), run on a CUDA GPU, or set "
        "optim.on_unsupported=fallback to use the unpaged optimizer"
    )


def _precision_problems(job: DeviceJob) -> list[str]:
    if job.precision == "bf16" and job.device == "mps":
        return ["precision: bf16 is unsafe on Apple MPS (several ops lack bf16 kernels); use precision: fp32 or auto."]
    if job.precision == "bf16" and job.device == "cuda" and job.gpu_bf16 is False:
        gpu = job.gpu_name or "this GPU"
        return [f"precision: bf16 is not supported by {gpu} (pre-Ampere); use precision: fp16 or auto."]
    if job.precision == "fp16" and job.device != "cuda":
        return [
            f"precision: fp16 needs a CUDA GPU (loss scaling is CUDA-only here), not {job.device}; use bf16 or fp32."
        ]
    return []
