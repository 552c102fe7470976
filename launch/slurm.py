"""`ftdist launch slurm CONFIG [--profile P] [--partition ...] [key=value ...]`: submit a run with submitit.

The job's resources come from a site profile (`cluster_configs/slurm/*.yaml`) with single values overridden
on the command line. Each Slurm task runs `ftdist.train(config, overrides)` in-process: one task per GPU,
rank and world size from SLURM_PROCID/SLURM_NTASKS and the head node from SLURM_JOB_NODELIST, all mapped
by `ftdist.distributed.env` (no torchrun inside the job).

Preemption: submitit asks Slurm for SIGUSR2 `signal_delay_s` before the time limit; the trainer treats it
like SIGUSR1/SIGTERM (all ranks agree at a step boundary and save). `TrainJob` then hands over to
submitit's own checkpoint-and-requeue handler, which requeues the job (`scontrol requeue`, counting
timeouts against `max_num_timeout`); the requeued job resumes from `latest`.

The sbatch script asks for `--mem` from the plan's host figure for this config (launch/slurm_preview.py; the
profile's `mem_gb` overrides it), names the command every task runs in a comment, and adds no `--wckey` unless
the profile sets one.

`--dry-run` prints the job, the command each task runs, the preflight verdict (files the config names that are
missing here are reported, not refused: a dry run may be previewed away from the cluster's filesystem), the
plan's row for the config, and the sbatch script that would be submitted, and submits nothing (no Slurm
needed): the script comes from submitit's own public `submit()` with `sbatch` and `srun` replaced by stand-ins
that only accept the script, so what it prints is exactly what a real submission hands to sbatch.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ftdist.errors import FtdistError
from launch.base import Launcher
from launch.profiles import SlurmProfile, parse_minutes
from launch.slurm_preview import job_memory, preview, task_command

DEFAULT_PROFILE = "cluster_configs/slurm/default.yaml"
DRY_RUN_JOB_ID = "0"

__all__ = ["SlurmLauncher", "SlurmProfile", "TrainJob", "load_profile", "parse_minutes", "render_sbatch", "submit"]


class SlurmLauncher(Launcher):
    """Submit to Slurm with submitit: one task per GPU, each running ftdist.train in-process."""

    name = "slurm"
    help = "submit to Slurm with submitit"
    profile_model = SlurmProfile
    default_profile = DEFAULT_PROFILE

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--job-name", help="Slurm job name (default: ftdist-<config name>)")
        parser.add_argument("--dry-run", action="store_true", help="print the sbatch script and submit nothing")
        parser.add_argument("--wait", action="store_true", help="wait for the job and print its result")
        parser.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")

    def world(self, config, profile: SlurmProfile):
        from ftdist.preflight import World, device_of

        device = device_of(config, profile.gpus_per_node)
        return World(profile.nodes * profile.tasks, device, profile.nodes, gpu=profile.gpu)

    def submit(self, config, profile: SlurmProfile, args: argparse.Namespace) -> int:
        job_name = args.job_name or f"ftdist-{config.name}"
        config_path = str(Path(args.config).resolve())
        command = task_command(config_path, args.overrides)
        planned = job_memory(config, profile)
        if args.dry_run:
            from ftdist.config.files import file_problems

            verdict = file_problems(config)  # the other checks already passed (or the command stopped)
            print(preview(command, self.world(config, profile), verdict, planned, profile))
            print(render_sbatch(profile, job_name, planned.mem, command))
            return 0
        job = submit(config_path, args.overrides, profile, job_name, planned.mem, command)
        print(f"submitted Slurm job {job.job_id} ({job_name}); logs: {Path(profile.folder) / job.job_id}")
        if args.wait:
            print(wait_for_result(job, args.timeout))
        return 0


def load_profile(path: str | Path, overrides: dict[str, Any]) -> SlurmProfile:
    """A site profile with command-line values applied (`SlurmProfile.load`)."""
    return SlurmProfile.load(path, overrides)


class TrainJob:
    """The callable submitit pickles: train in every task; on preemption, let submitit requeue the job.

    It is a submitit Checkpointable in the duck-typed sense (it has `checkpoint`): resubmitting the same
    call is enough, because the trainer itself resumes from the run's `latest` checkpoint.
    """

    def __init__(self, config: str, overrides: list[str]) -> None:
        self.config, self.overrides = config, list(overrides)

    def __call__(self) -> dict[str, Any]:
        from ftdist.trainer import train

        requeue = signal.getsignal(signal.SIGUSR2)  # submitit's checkpoint-and-requeue handler
        result = train(self.config, self.overrides)
        if result.preempted and callable(requeue):
            requeue(signal.SIGUSR2, None)  # rank 0: pickles checkpoint(), `scontrol requeue`, exits
        return {"run_dir": str(result.run_dir), "step": result.step, "preempted": result.preempted, **result.metrics}

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(TrainJob(self.config, self.overrides))


def render_sbatch(profile: SlurmProfile, job_name: str, mem: str | None = None, command: str | None = None) -> str:
    """The sbatch script submitit submits for this profile, produced by submitit's public `submit()` against
    stand-in `sbatch`/`srun` commands (so no Slurm is needed and nothing is queued)."""
    import submitit

    with _stand_in_slurm() as folder:
        executor = submitit.SlurmExecutor(folder=Path(folder) / "%j")
        executor.update_parameters(**profile.sbatch_parameters(job_name, mem, command))
        job = executor.submit(TrainJob("CONFIG", []))
        text = Path(job.paths.submission_file).read_text()
    # The script names the stand-in folder; show the profile's.
    return text.replace(str(folder), str(Path(profile.folder).resolve()))


@contextmanager
def _stand_in_slurm():
    """A temporary folder, with `sbatch` and `srun` stand-ins first on PATH for the duration."""
    folder = Path(tempfile.mkdtemp(prefix="ftdist-dry-run-"))
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    for name, body in (("sbatch", f"echo 'Submitted batch job {DRY_RUN_JOB_ID}'"), ("srun", "exit 0")):
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    saved = os.environ.get("PATH", "")
    os.environ["PATH"] = f"{bin_dir}{os.pathsep}{saved}"
    try:
        yield folder
    finally:
        os.environ["PATH"] = saved
        shutil.rmtree(folder, ignore_errors=True)


def submit(
    config: str, overrides: list[str], profile: SlurmProfile, job_name: str, mem: str | None = None, command=None
):
    """Submit the run; returns the submitit Job (job.job_id, job.result(), job.state). `mem`: the planned --mem
    when the profile sets none; `command`: the task's command line, written into the script as a comment."""
    import submitit

    try:
        executor = submitit.SlurmExecutor(folder=Path(profile.folder) / "%j", max_num_timeout=profile.max_num_timeout)
    except RuntimeError as error:  # no srun on PATH
        raise FtdistError(f"cannot submit to Slurm here: {error}; use --dry-run to see the script") from None
    executor.update_parameters(**profile.sbatch_parameters(job_name, mem, command or task_command(config, overrides)))
    try:
        return executor.submit(TrainJob(config, overrides))
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as error:
        # sbatch's own rejection (its stderr), e.g. GPUs asked on a partition without them
        raise FtdistError(
            f"Slurm rejected the job: {str(error).strip()}. Check the site profile's partition, gpus_per_node, "
            "nodes, mem_gb and time against `sinfo -o '%P %G %c %m %l'`"
        ) from None


def wait_for_result(job, timeout_s: float | None) -> Any:
    """Rank 0's result, with a deadline: without sacct, submitit can wait forever for a job that died unseen.
    A job of several tasks (nodes x tasks per node) has one result per task, all of the same run."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not job.done():
        if deadline is not None and time.monotonic() > deadline:
            raise FtdistError(f"Slurm job {job.job_id} did not finish within {timeout_s:g} s; it is still queued")
        time.sleep(2)
    return job.results()[0]
