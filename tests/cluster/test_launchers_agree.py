"""One config, four launchers, the same weights bit for bit: `ftdist train`, `ftdist launch local --nproc 1`,
`sbatch slurm/tiny_gpt.sh` (--cpus-per-task=2) and `ftdist launch ray --workers 1 --cpus-per-worker 2`.

The model is 256 wide, so `pick_cpu_threads` gives it the allocation's threads (2 here) rather than
the small-model 1, and thread count changes the sums' rounding: before the rule was shared, the sbatch script
and `launch local` ran it on 1 thread and ended with different weights. OMP_NUM_THREADS is unset throughout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_helpers import REPO, job_env, require_slurm, same_weights, sbatch, wait_job

pytestmark = [pytest.mark.slurm, pytest.mark.ray, pytest.mark.slow]

ARGS = [
    "cluster_configs/tiny_sql_gpt.yaml",
    "model.scratch.n_layer=1",
    "model.scratch.n_embd=256",
    "model.scratch.n_head=4",
    "train.max_steps=4",
    "train.eval_every=0",
    "train.log_every=2",
    "checkpoint.every=0",
    "tracking.tensorboard=false",
    "tracking.progress=false",
    "tracking.plots=false",
]


def test_train_local_sbatch_and_ray_end_with_the_same_weights(tmp_path: Path):
    require_slurm()
    if len(os.sched_getaffinity(0)) < 2 or shutil.which("ray", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("needs 2 CPUs and the ray command next to this interpreter")
    env = {k: v for k, v in job_env().items() if k not in ("OMP_NUM_THREADS", "FTDIST_OMP_NUM_THREADS")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # Ray's workers find `ray` there
    runs = {name: tmp_path / name for name in ("train", "local", "sbatch", "ray")}
    job = sbatch("slurm/tiny_gpt.sh", [*ARGS, f"output_dir={runs['sbatch']}"], ["--time=10"], tmp_path / "job.out", env)

    ray = ["--address", "local", "--workers", "1", "--cpus-per-worker", "2", "--health-check-interval-s", "0.2"]
    commands = {  # all at once: the runs are short, their start-up (imports, Ray) is most of the time
        "train": ["train"],
        "local": ["launch", "local", "--nproc", "1"],
        "ray": ["launch", "ray", *ray],
    }
    started = {
        name: subprocess.Popen(
            [sys.executable, "-m", "ftdist", *command, *ARGS, f"output_dir={runs[name]}"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for name, command in commands.items()
    }
    for name, process in started.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"{name}:\n{output}"
    info = wait_job(job, 300)
    assert info["JobState"] == "COMPLETED", (tmp_path / "job.out").read_text()
    for name in ("local", "sbatch", "ray"):
        assert same_weights(runs[name], runs["train"]), f"{name} differs from ftdist train"
