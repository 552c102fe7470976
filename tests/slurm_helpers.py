"""Submit and watch jobs on the real Slurm cluster that tests/cluster/slurm_up.sh starts (CI: .ci/run).

Every wait has a deadline; a job still running at the deadline is cancelled so it cannot outlive the test.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Node states that take jobs. "planned": the backfill scheduler has set the node aside for a pending job (another
# test's, while the tests run on two workers): busy for now, but up.
USABLE = ("idle", "mixed", "allocated", "completing", "planned")


def require_slurm() -> None:
    """Skip (with the reason) unless a Slurm cluster answers and has a usable node."""
    reason = _slurm_unavailable()
    if reason:
        pytest.skip(reason)


@functools.cache
def _slurm_unavailable() -> str | None:
    """Checked once per session: sinfo against a stopped slurmctld retries for ~10 s before giving up."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm is not installed here; start one with: bash tests/cluster/slurm_up.sh"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=15).stdout
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 15 s: the Slurm cluster is down (bash tests/cluster/slurm_up.sh)"
    if not any(s.strip("*~#") in USABLE for s in states.split()):
        found = states.split() or "no answer"
        return f"the Slurm cluster has no usable node (sinfo: {found}); start it: bash tests/cluster/slurm_up.sh"
    return None


def require_nodes(count: int) -> None:
    """Skip unless the cluster has `count` usable nodes (tests/cluster/slurm_up.sh starts 2 by default)."""
    require_slurm()
    states = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], capture_output=True, text=True, timeout=15).stdout
    usable = {line.split()[0] for line in states.splitlines() if line.split()[1].strip("*~#") in USABLE}
    if len(usable) < count:
        pytest.skip(f"needs {count} Slurm nodes, the cluster has {sorted(usable)}: bash tests/cluster/slurm_up.sh")


def same_weights(run: Path, other: Path) -> bool:
    """Bitwise equality of two runs' final/model.safetensors."""
    from safetensors.torch import load_file

    weights, others = load_file(run / "final" / "model.safetensors"), load_file(other / "final" / "model.safetensors")
    return weights.keys() == others.keys() and all((weights[k] == others[k]).all() for k in weights)


def job_env() -> dict[str, str]:
    """The environment sbatch passes into the job: this checkout's ftdist and this interpreter."""
    return {**os.environ, "PYTHONPATH": str(REPO), "FTDIST_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}


def sbatch(script: str, args: list[str], options: list[str], log: Path, env: dict | None = None) -> str:
    """Submit `slurm/<script>` from the checkout root with extra sbatch options; returns the job id."""
    cmd = ["sbatch", "--parsable", f"--output={log}", *options, script, *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, env=env or job_env())
    assert done.returncode == 0, f"sbatch failed: {done.stderr}"
    return done.stdout.strip().split(";")[0]


def job_info(job_id: str) -> dict[str, str]:
    """`scontrol show job` as a dict (JobState, Restarts, ExitCode, ...); works without accounting."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def cancel(job_id: str) -> None:
    """Cancel for good: the sbatch scripts requeue a job whose batch shell gets SIGTERM, which scancel sends."""
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "requeue=0"], capture_output=True, timeout=30)
    subprocess.run(["scancel", job_id], timeout=30)


def wait_job(job_id: str, timeout_s: float) -> dict[str, str]:
    """Wait until the job has left the queue for good (a requeued job stays queued); cancel it at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = job_info(job_id).get("JobState", "")
        if state in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED"):
            return job_info(job_id)
        if time.monotonic() > deadline:
            cancel(job_id)
            pytest.fail(f"Slurm job {job_id} still {state or 'unknown'} after {timeout_s:g} s; cancelled it")
        time.sleep(0.5)


def wait_for_step(run_dir: Path, step: int, job_id: str, timeout_s: float) -> None:
    """Wait until the run has logged a metric at `step` or later (training is under way)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events = read_metrics(run_dir)
        if events and events[-1]["step"] >= step:
            return
        if job_info(job_id).get("JobState") in ("COMPLETED", "FAILED", "CANCELLED"):
            pytest.fail(f"job {job_id} ended before step {step}")
        time.sleep(0.2)
    cancel(job_id)
    pytest.fail(f"job {job_id} did not reach step {step} within {timeout_s:g} s")


def read_metrics(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    complete = path.read_text().split("\n")[:-1]  # a line still being written has no newline yet
    return [json.loads(line) for line in complete if line.strip()]


def loss_curve(run_dir: Path) -> dict[int, float]:
    return {event["step"]: event["loss"] for event in read_metrics(run_dir) if "loss" in event}
