"""What a Slurm job of a run config will need and do, for the sbatch script and for `--dry-run`.

`job_memory` sizes `--mem` from the planner's host figure for the config's own strategy (the model load, or the
optimizer and parameters a ZeRO/FSDP offload keeps in host RAM: the larger), with headroom for what the plan
does not count. `preview` is the text a site admin reads before the script: the command each task runs, the
preflight verdict, and the plan's row for this config. No torch is imported.
"""

from __future__ import annotations

import math
import shlex
from dataclasses import dataclass

from ftdist.errors import FtdistError
from ftdist.planner.hardware import GiB, Hardware, cpu_device, human, preset

HOST_HEADROOM = 1.2  # allocator slack, page cache of the checkpoint being written, a longer batch
PER_TASK_BYTES = 4 * GiB  # one Python process with torch, CUDA's host allocations and the data loader
ASSUMED_GPU = "a100-80"


@dataclass(frozen=True)
class JobPlan:
    """The plan's row for the config on the profile's nodes, and the --mem it gives (None: not planned)."""

    mem: str | None
    summary: str


def job_memory(config, profile) -> JobPlan:
    """--mem per node for `config` on `profile`'s nodes, and one line saying where it came from."""
    from ftdist.planner.candidates import candidate_from_config
    from ftdist.planner.recommend import evaluate, plan
    from ftdist.planner.workload import workload_from_config

    gpus = profile.gpus_per_node
    device = preset(profile.gpu or ASSUMED_GPU) if gpus else cpu_device()
    hardware = Hardware(device, gpus_per_node=max(gpus, 1), nodes=profile.nodes)
    assumed = "" if profile.gpu or not gpus else " (assumed: set gpu: in the profile for yours)"
    try:
        workload = workload_from_config(config)
    except FtdistError as error:
        return JobPlan(None, f"not planned: {error}")
    if config.strategy.name == "auto":
        row = plan(workload, hardware).best
        if row is None:
            return JobPlan(None, f"strategy: auto finds nothing that fits on {hardware.describe()}")
    else:
        row = evaluate(workload, candidate_from_config(config.strategy, hardware.world), hardware)
    per_node = row.host_need if device.kind == "cuda" else row.estimate.needs * profile.tasks
    mem_gib = math.ceil((per_node * HOST_HEADROOM + profile.tasks * PER_TASK_BYTES) / GiB)
    verdict = "fits" if row.fits else f"does not fit: {row.why_not}"
    summary = (
        f"{row.candidate.label} on {hardware.describe()}{assumed}: {human(row.estimate.needs)} per device, "
        f"{human(row.host_need)} host RAM per node; {verdict}. --mem={mem_gib}G is that host figure "
        f"+{HOST_HEADROOM - 1:.0%} + {PER_TASK_BYTES // GiB} GiB per task (set mem_gb in the profile to change it)"
    )
    return JobPlan(f"{mem_gib}G", summary)


def task_command(config_path: str, overrides: list[str]) -> str:
    """What every task runs, as the equivalent command line (TrainJob calls ftdist.train in-process)."""
    return shlex.join(["ftdist", "train", config_path, *overrides])


def preview(command: str, world, verdict: list[str], job: JobPlan, profile) -> str:
    """The lines a dry run prints above the sbatch script, each a shell comment."""
    mem = f"--mem={profile.mem_gb:g}G from the profile" if profile.mem_gb else "no --mem (mem_gb: 0)"
    mem_line = job.summary if profile.mem_gb is None else f"{mem}; the plan: {job.summary}"
    check = "ok" if not verdict else "a submission would be refused: " + " ".join(verdict)
    return "\n".join(
        [
            f"# job: {world}; each task runs: {command}",
            f"# preflight: {check}",
            f"# plan: {mem_line}",
            "",
        ]
    )
