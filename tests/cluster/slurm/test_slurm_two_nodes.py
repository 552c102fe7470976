"""Two Slurm nodes on one machine (tests/cluster/slurm_up.sh: slurmd n1 and n2, each its own address).

- `sbatch --nodes=2 slurm/full_ft_13b.sh` runs one torchrun per node; preempted mid-run with USR1 it saves,
  requeues, comes back on both nodes and ends bitwise equal to an uninterrupted 1-node 2-process run of the
  same global batch (that one run is the reference for both claims);
- `ftdist launch slurm --nodes 2` (submitit, one task per node, ddp) ends bitwise equal to the same reference;
- an output_dir that one node does not see (n2 has its own tmpfs on /srv/slurm-ci-local) fails before
  training, naming the node.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from slurm_helpers import REPO, job_env, loss_curve, require_nodes, same_weights, sbatch, wait_for_step, wait_job

pytestmark = [pytest.mark.slurm, pytest.mark.distributed, pytest.mark.slow]

CONFIG = "cluster_configs/tiny_llama_full.yaml"
STEPS = 60
ARGS = [
    CONFIG,
    "strategy=ddp",
    f"train.max_steps={STEPS}",
    "train.eval_every=0",
    "train.log_every=5",
    "checkpoint.every=0",
    "tracking.tensorboard=false",
]
NODE_LOCAL = Path("/srv/slurm-ci-local")  # n2 sees its own empty tmpfs here (slurm_up.sh)


def job_options(nodes: int) -> list[str]:
    return [f"--nodes={nodes}", "--gpus-per-node=0", "--cpus-per-task=1", "--mem=2G", "--time=30"]  # > USR1@600


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: 1 node, 2 processes (torchrun --nproc_per_node 2), the same global batch."""
    require_nodes(2)
    folder = tmp_path_factory.mktemp("one-node")
    env = {**job_env(), "FTDIST_NPROC_PER_NODE": "2"}
    job = sbatch(
        "slurm/full_ft_13b.sh", [*ARGS, f"output_dir={folder / 'run'}"], job_options(1), folder / "job.out", env
    )
    return {"job": job, "run": folder / "run", "log": folder / "job.out", "done": None}


def finished(reference) -> Path:
    if reference["done"] is None:
        reference["done"] = wait_job(reference["job"], 400)
    assert reference["done"]["JobState"] == "COMPLETED", reference["log"].read_text()
    return reference["run"]


def test_two_node_sbatch_preempted_equals_one_node_uninterrupted(reference, tmp_path):
    run, log = tmp_path / "run", tmp_path / "job.out"
    env = {**job_env(), "FTDIST_NPROC_PER_NODE": "1"}
    job = sbatch("slurm/full_ft_13b.sh", [*ARGS, f"output_dir={run}"], job_options(2), log, env)
    wait_for_step(run, 10, job, 240)
    subprocess.run(["scancel", "--signal=USR1", "--full", job], check=True, timeout=30)
    info = wait_job(job, 400)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info.get("Restarts") == "1", text
    starts = [line for line in text.splitlines() if line.startswith("ftdist slurm: job ")]
    assert len(starts) == 2 and all("nodes=n[1-2]" in line for line in starts), starts  # both runs on 2 nodes
    assert "SIGUSR1 received: saved step" in text and "SLURM_RESTART_COUNT=1" in text, text
    assert "resumed from" in text and "ddp x2" in text, text
    one_node = finished(reference)
    assert loss_curve(run) == loss_curve(one_node)
    assert same_weights(run, one_node)


def test_submitit_two_nodes_ddp_equals_one_node(reference, tmp_path):
    run = tmp_path / "run"
    command = [
        sys.executable, "-m", "ftdist", "launch", "slurm", "--profile", "cluster_configs/slurm/ci.yaml",
        "--nodes", "2", "--tasks-per-node", "1", "--cpus-per-task", "1", "--folder", str(tmp_path / "submitit"),
        "--wait", "--timeout", "400", *ARGS, f"output_dir={run}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=job_env(), capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"'step': {STEPS}" in done.stdout and "'preempted': False" in done.stdout, done.stdout
    logs = "".join(p.read_text() for p in (tmp_path / "submitit").rglob("*_log.out"))
    assert "ddp x2" in logs, logs
    assert same_weights(run, finished(reference))


def test_output_dir_that_one_node_cannot_see_fails_naming_the_node(tmp_path):
    require_nodes(2)
    base = NODE_LOCAL / f"ftdist-test-{uuid.uuid4().hex[:8]}"  # on n1 the host's folder, on n2 a private tmpfs
    log = tmp_path / "job.out"
    env = {**job_env(), "FTDIST_NPROC_PER_NODE": "1"}
    try:
        job = sbatch("slurm/full_ft_13b.sh", [*ARGS, f"output_dir={base / 'run'}"], job_options(2), log, env)
        info = wait_job(job, 300)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = log.read_text()
    assert info["JobState"] == "FAILED", text
    assert f"output_dir={base / 'run'} is not one shared folder" in text, text
    assert "node rank(s) 1 cannot see it (this is node n2, node rank 1)" in text, text
    assert "starting at step 0" not in text  # stopped before the model was built
