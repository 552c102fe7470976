"""The shipped sbatch scripts on the real Slurm cluster of tests/cluster/slurm_up.sh, one node per job.

- slurm/tiny_gpt.sh trains a tiny GPT to completion: loss falls, final/ loads with transformers;
- slurm/full_ft_13b.sh runs its own multi-node launch logic (srun -> torchrun --node_rank $SLURM_NODEID
  -> ftdist train) on 2 CPU processes with DDP over gloo, overridden to the tiny Llama;
- preemption: `scancel --signal=USR1 --full` mid-run -> the job saves, requeues itself, resumes and ends with
  the same weights and loss curve as an uninterrupted run, and its log shows SLURM_RESTART_COUNT=1;
- a plain `scancel` stays cancelled (no requeue). Two-node jobs: tests/cluster/slurm/test_slurm_two_nodes.py.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from safetensors.torch import load_file
from slurm_helpers import REPO, job_env, loss_curve, require_slurm, sbatch, wait_for_step, wait_job

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

# A small model for fast jobs: the tiny SQL GPT cut to 2 layers of width 32.
TINY = [
    "model.scratch.n_layer=2",
    "model.scratch.n_embd=32",
    "model.scratch.n_head=2",
    "train.eval_every=0",
    "train.log_every=5",
    "checkpoint.every=0",
    "tracking.tensorboard=false",
]
CPU_JOB = ["--cpus-per-task=1", "--mem=2G", "--time=10"]


@pytest.fixture(autouse=True)
def _slurm():
    require_slurm()


def test_tiny_gpt_script_trains_and_exports(tmp_path: Path):
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    log = tmp_path / "job.out"
    job = sbatch("slurm/tiny_gpt.sh", [*TINY, "train.max_steps=40", f"output_dir={run}"], CPU_JOB, log)
    info = wait_job(job, 300)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text
    assert "training exited with status 0" in text
    losses = list(loss_curve(run).values())
    assert len(losses) >= 4 and losses[-1] < losses[0] - 0.3, losses
    model = AutoModelForCausalLM.from_pretrained(run / "final")
    assert model.num_parameters() > 0


def test_13b_script_launch_logic_on_two_cpu_processes(tmp_path: Path):
    """The 13B script's srun -> torchrun path, resized on the sbatch line to one CPU node and 2 processes."""
    run = tmp_path / "run"
    log = tmp_path / "job.out"
    options = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2", "--mem=4G", "--time=30"]  # > USR1@600
    env = {**job_env(), "FTDIST_NPROC_PER_NODE": "2"}
    args = ["cluster_configs/tiny_llama_full.yaml", "strategy=ddp", "train.max_steps=20", "train.eval_every=0"]
    job = sbatch("slurm/full_ft_13b.sh", [*args, "tracking.tensorboard=false", f"output_dir={run}"], options, log, env)
    info = wait_job(job, 400)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text
    assert "launcher=torchrun" in text and "ddp x2" in text, text
    losses = list(loss_curve(run).values())
    assert losses[-1] < losses[0], losses
    assert (run / "final" / "model.safetensors").exists()


def test_a_dpo_job_runs_through_the_same_script_on_two_processes(tmp_path: Path):
    """Preference tuning under Slurm: the 13B script's srun -> torchrun path with FSDP2 and full-weight DPO, whose
    ranks score every pair with the starting model before step 1 and then learn the preference."""
    import math

    import yaml
    from preference_helpers import preference_config, write_pairs

    run, log = tmp_path / "run", tmp_path / "job.out"
    config = tmp_path / "dpo.yaml"
    method = {"name": "dpo"}
    config.write_text(yaml.safe_dump(preference_config(run, write_pairs(tmp_path / "pairs.jsonl"), method)))
    options = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2", "--mem=4G", "--time=30"]
    env = {**job_env(), "FTDIST_NPROC_PER_NODE": "2"}
    job = sbatch("slurm/full_ft_13b.sh", [str(config), "strategy=fsdp", "train.micro_batch_size=4"], options, log, env)
    info = wait_job(job, 400)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text
    assert "| dpo | fsdp x2" in text, text
    losses = list(loss_curve(run).values())
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6) and losses[-1] < losses[0] - 0.1, losses
    assert (run / "reference" / "scores.npz").exists() and (run / "final" / "model.safetensors").exists()


def test_preempted_job_requeues_and_resumes_exactly(tmp_path: Path):
    """USR1 mid-run: save, exit 75, `scontrol requeue`, resume from `latest`; same result as no preemption."""
    args = [*TINY, "train.max_steps=400"]
    ref_run, run = tmp_path / "reference", tmp_path / "preempted"
    ref_job = sbatch("slurm/tiny_gpt.sh", [*args, f"output_dir={ref_run}"], CPU_JOB, tmp_path / "ref.out")
    job = sbatch("slurm/tiny_gpt.sh", [*args, f"output_dir={run}"], CPU_JOB, tmp_path / "job.out")

    wait_for_step(run, 20, job, 180)
    subprocess.run(["scancel", "--signal=USR1", "--full", job], check=True, timeout=30)
    info = wait_job(job, 300)
    ref_info = wait_job(ref_job, 300)

    text = (tmp_path / "job.out").read_text()
    assert info["JobState"] == "COMPLETED" and ref_info["JobState"] == "COMPLETED", text
    assert "SIGUSR1 received: saved step" in text, f"the signal came after training ended:\n{text}"
    assert "requeueing job" in text
    assert "SLURM_RESTART_COUNT=1" in text and info.get("Restarts") == "1", text
    assert "resumed from" in text

    assert loss_curve(run) == loss_curve(ref_run)
    weights, ref_weights = (
        load_file(run / "final" / "model.safetensors"),
        load_file(ref_run / "final" / "model.safetensors"),
    )
    assert weights.keys() == ref_weights.keys()
    assert all((weights[k] == ref_weights[k]).all() for k in weights)


def test_missing_config_fails_with_a_clear_message(tmp_path: Path):
    log = tmp_path / "job.out"
    job = sbatch("slurm/tiny_gpt.sh", ["no/such/config.yaml"], CPU_JOB, log)
    info = wait_job(job, 120)
    assert info["JobState"] == "FAILED"
    assert "config file 'no/such/config.yaml' not found" in log.read_text()
    assert str(REPO) in log.read_text()


def test_preempted_torchrun_job_requeues_and_finishes(tmp_path: Path):
    """The 13B script's torchrun path: USR1 reaches both DDP workers (not the agent), they save together, torchrun
    exits 1 (it does not pass a worker's 75 on), so the batch script requeues because it saw the signal itself."""
    run = tmp_path / "run"
    log = tmp_path / "job.out"
    options = ["--nodes=1", "--gpus-per-node=0", "--cpus-per-task=2", "--mem=4G", "--time=30"]  # > USR1@600
    env = {**job_env(), "FTDIST_NPROC_PER_NODE": "2"}
    args = ["cluster_configs/tiny_llama_full.yaml", "strategy=ddp", "train.max_steps=200", "train.eval_every=0"]
    job = sbatch("slurm/full_ft_13b.sh", [*args, *TINY[3:], f"output_dir={run}"], options, log, env)
    wait_for_step(run, 10, job, 240)
    subprocess.run(["scancel", "--signal=USR1", "--full", job], check=True, timeout=30)
    info = wait_job(job, 400)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info.get("Restarts") == "1", text
    assert "SIGUSR1 received: saved step" in text and "SLURM_RESTART_COUNT=1" in text, text
    assert "resumed from" in text and "ddp x2" in text
    assert max(loss_curve(run)) == 200


def test_one_srun_task_per_process_without_torchrun(tmp_path: Path):
    """tiny_gpt.sh, srun, 2 tasks: ftdist.distributed.env maps SLURM_PROCID/SLURM_NTASKS to rank/world and finds the
    head node and port from SLURM_JOB_NODELIST/SLURM_JOB_ID (no torchrun, no MASTER_ADDR from the script)."""
    run = tmp_path / "run"
    log = tmp_path / "job.out"
    options = ["--ntasks-per-node=2", "--cpus-per-task=1", "--mem=4G", "--time=10"]
    args = ["cluster_configs/tiny_llama_full.yaml", "strategy=ddp", "train.max_steps=10", *TINY[3:]]
    job = sbatch("slurm/tiny_gpt.sh", [*args, f"output_dir={run}"], options, log)
    info = wait_job(job, 300)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text
    assert "launcher=srun" in text and "ddp x2" in text, text
    assert (run / "final" / "model.safetensors").exists()


def test_scancel_stays_cancelled(tmp_path: Path):
    """A plain `scancel` (SIGTERM to the batch shell) stops the job for good: the workers save, no requeue."""
    run, log = tmp_path / "run", tmp_path / "job.out"
    job = sbatch("slurm/tiny_gpt.sh", [*TINY, "train.max_steps=400", f"output_dir={run}"], CPU_JOB, log)
    wait_for_step(run, 10, job, 180)
    subprocess.run(["scancel", job], check=True, timeout=30)
    info = wait_job(job, 120)
    text = log.read_text()
    assert info["JobState"] == "CANCELLED" and info.get("Restarts") == "0", text
    assert "not requeueing" in text and "requeueing job" not in text, text
