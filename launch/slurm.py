"""`ftdist launch slurm CONFIG [--profile P] [--partition ...] [key=value ...]`: submit a run with submitit.

The job's resources come from a site profile (`cluster_configs/slurm/*.yaml`) with single values overridden
on the command line. Each Slurm task runs `ftdist.train(config, overrides)` in-process: one task per GPU,
rank and world size from SLURM_PROCID/SLURM_NTASKS and the head node from SLURM_JOB_NODELIST, all mapped
by `ftdist.env` (no torchrun inside the job).

Preemption: submitit asks Slurm for SIGUSR2 `signal_delay_s` before the time limit; the trainer treats it
like SIGUSR1/SIGTERM (all ranks agree at a step boundary and save). `TrainJob` then hands over to
submitit's own checkpoint-and-requeue handler, which requeues the job (`scontrol requeue`, counting
timeouts against `max_num_timeout`); the requeued job resumes from `latest`.

`--dry-run` prints the sbatch script that would be submitted and submits nothing (no Slurm needed).
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, field_validator

from ftdist.config.base import Section
from ftdist.errors import FtdistError

DEFAULT_PROFILE = "cluster_configs/slurm/default.yaml"


class SlurmProfile(Section):
    """A site's Slurm resources for one job (see cluster_configs/slurm/default.yaml)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int = 1
    gpus_per_node: int = 0
    tasks_per_node: int | None = None
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    time: int | str = 60
    signal_delay_s: int = 120
    max_num_timeout: int = 3
    folder: str = "slurm/logs/submitit"
    setup: list[str] = []
    additional: dict[str, Any] = {}

    @field_validator("time")
    @classmethod
    def _minutes(cls, value: int | str) -> int:
        return parse_minutes(value)

    def sbatch_parameters(self, job_name: str) -> dict[str, Any]:
        """The keyword arguments of submitit's SlurmExecutor (the names of its sbatch template)."""
        tasks = self.tasks_per_node or max(self.gpus_per_node, 1)
        params: dict[str, Any] = {
            "job_name": job_name,
            "nodes": self.nodes,
            "ntasks_per_node": tasks,
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
            "mem": f"{self.mem_gb:g}GB" if self.mem_gb else None,
            "setup": self.setup or None,
        }
        params.update({key: value for key, value in optional.items() if value is not None})
        return params


def parse_minutes(value: int | str) -> int:
    """Slurm time (`90`, `1:30:00`, `2-00:00:00`) as whole minutes, the unit submitit takes."""
    if isinstance(value, int):
        return value
    text = str(value).strip()
    days, _, clock = text.rpartition("-")
    parts = [int(p) for p in clock.split(":")] if clock else []
    if not parts or len(parts) > 3 or (days and not days.isdigit()):
        raise ValueError(f"time={value!r} is not a Slurm time; write minutes (90) or [D-]HH:MM:SS (1:30:00)")
    if len(parts) == 1:
        minutes = parts[0]
    else:
        hours, mins = parts[0], parts[1]
        minutes = hours * 60 + mins + (1 if len(parts) == 3 and parts[2] else 0)
    return minutes + (int(days) * 24 * 60 if days else 0)


def load_profile(path: str | Path, overrides: dict[str, Any]) -> SlurmProfile:
    """Read a site profile and apply command-line values; unknown keys are errors that list the valid ones."""
    path = Path(path)
    if not path.is_file():
        raise FtdistError(f"--profile {path} does not exist; use {DEFAULT_PROFILE} or a copy of it")
    raw = yaml.safe_load(path.read_text()) or {}
    raw.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return SlurmProfile(**raw)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        valid = ", ".join(SlurmProfile.model_fields)
        raise FtdistError(f"site profile {path}: {problems} (valid keys: {valid})") from None


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


def render_sbatch(profile: SlurmProfile, job_name: str, python: str | None = None) -> str:
    """The sbatch script submitit would submit for this profile (same template, same parameters)."""
    from submitit.slurm.slurm import _make_sbatch_string  # what SlurmExecutor itself calls

    python = python or shlex.quote(sys.executable)
    folder = Path(profile.folder) / "%j"
    command = f"{python} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    return _make_sbatch_string(command=command, folder=folder, **profile.sbatch_parameters(job_name))


def submit(config: str, overrides: list[str], profile: SlurmProfile, job_name: str):
    """Submit the run; returns the submitit Job (job.job_id, job.result(), job.state)."""
    import submitit

    try:
        executor = submitit.SlurmExecutor(folder=Path(profile.folder) / "%j", max_num_timeout=profile.max_num_timeout)
    except RuntimeError as error:  # no srun on PATH
        raise FtdistError(f"cannot submit to Slurm here: {error}; use --dry-run to see the script") from None
    executor.update_parameters(**profile.sbatch_parameters(job_name))
    try:
        return executor.submit(TrainJob(config, overrides))
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError) as error:
        # sbatch's own rejection (its stderr), e.g. GPUs asked on a partition without them
        raise FtdistError(
            f"Slurm rejected the job: {str(error).strip()}. Check the site profile's partition, gpus_per_node, "
            "nodes, mem_gb and time against `sinfo -o '%P %G %c %m %l'`"
        ) from None


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("slurm", help="submit to Slurm with submitit", description=__doc__)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=DEFAULT_PROFILE, help=f"site profile YAML (default {DEFAULT_PROFILE})")
    parser.add_argument("--partition", help="Slurm partition")
    parser.add_argument("--nodes", type=int, help="number of nodes")
    parser.add_argument("--gpus-per-node", type=int, help="GPUs per node (one task per GPU)")
    parser.add_argument("--tasks-per-node", type=int, help="tasks per node (default: one per GPU)")
    parser.add_argument("--cpus-per-task", type=int, help="CPUs per task")
    parser.add_argument("--time", help="time limit: minutes or [D-]HH:MM:SS")
    parser.add_argument("--account", help="account to charge")
    parser.add_argument("--qos", help="quality of service")
    parser.add_argument("--job-name", help="Slurm job name (default: ftdist-<config name>)")
    parser.add_argument("--dry-run", action="store_true", help="print the sbatch script and submit nothing")
    parser.add_argument("--wait", action="store_true", help="wait for the job and print its result")
    parser.add_argument("--timeout", type=float, default=None, help="with --wait: give up after this many seconds")
    parser.add_argument("config", help="a run config YAML, e.g. cluster_configs/llama2_7b_full_zero3.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=10")


def run(args: argparse.Namespace) -> int:
    from ftdist.config import load_config

    if not Path(args.config).is_file():
        raise FtdistError(f"config file {args.config} does not exist; pass a run config YAML such as {DEFAULT_PROFILE}")
    config = load_config(args.config, args.overrides)  # a bad config stops here, not in a queued job
    keys = ("partition", "nodes", "gpus_per_node", "tasks_per_node", "cpus_per_task", "time", "account", "qos")
    profile = load_profile(args.profile, {key: getattr(args, key) for key in keys})
    job_name = args.job_name or f"ftdist-{config.name}"
    if args.dry_run:
        print(render_sbatch(profile, job_name))
        return 0
    job = submit(str(Path(args.config).resolve()), args.overrides, profile, job_name)
    print(f"submitted Slurm job {job.job_id} ({job_name}); logs: {Path(profile.folder) / job.job_id}")
    if args.wait:
        print(wait_for_result(job, args.timeout))
    return 0


def wait_for_result(job, timeout_s: float | None) -> Any:
    """job.result() with a deadline: without sacct, submitit can wait forever for a job that died unseen."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while not job.done():
        if deadline is not None and time.monotonic() > deadline:
            raise FtdistError(f"Slurm job {job.job_id} did not finish within {timeout_s:g} s; it is still queued")
        time.sleep(2)
    return job.result()
