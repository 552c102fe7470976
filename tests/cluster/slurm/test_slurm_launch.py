"""`ftdist launch slurm`: the sbatch script it renders (golden file), site profiles, clear errors, and (on the
real Slurm cluster) a submitit round trip, a preempted-and-requeued submitit job, and Slurm's own rejection.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from slurm_helpers import REPO, job_env, require_slurm, wait_for_step

from ftdist.cli import main
from ftdist.errors import FtdistError
from launch.slurm import load_profile, parse_minutes, submit, wait_for_result

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "slurm_13b_2x8.sbatch"
DRY_RUN_13B = [
    "launch",
    "slurm",
    "--dry-run",
    "--nodes=2",
    "--gpus-per-node=8",
    "--partition=gpu",
    "--account=llm",
    "--qos=high",
    "--time=2-00:00:00",
    "cluster_configs/llama2_13b_full_zero3_offload.yaml",
]


def render(capsys, argv: list[str]) -> str:
    assert main(argv) == 0
    text = capsys.readouterr().out
    return text.replace(sys.executable, "<PYTHON>").replace(str(REPO), "<REPO>")  # the venv may sit in REPO


def test_dry_run_matches_golden_file_for_a_2x8_13b_job(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    text = render(capsys, DRY_RUN_13B)
    if not GOLDEN.exists():  # (re)create it by deleting it: this run writes it for review, and fails
        GOLDEN.write_text(text)
        pytest.fail(f"wrote {GOLDEN}; review it and commit it")
    assert text == GOLDEN.read_text()
    for line in ("--nodes=2", "--ntasks-per-node=8", "--gpus-per-node=8", "--signal=USR2@300", "--requeue"):
        assert line in text


@pytest.mark.parametrize(
    ("text", "minutes"), [(90, 90), ("90", 90), ("1:30:00", 90), ("2-00:00:00", 2880), ("0:00:30", 1)]
)
def test_slurm_time_to_minutes(text, minutes):
    assert parse_minutes(text) == minutes


def test_profile_with_unknown_key_lists_valid_keys(tmp_path):
    profile = tmp_path / "site.yaml"
    profile.write_text("partiton: gpu\n")
    with pytest.raises(FtdistError, match=r"partiton.*valid keys: partition, account"):
        load_profile(profile, {})


def test_missing_config_and_profile_are_clear_errors(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["launch", "slurm", "--dry-run", "no/such.yaml"]) == 2
    assert "config file no/such.yaml does not exist" in capsys.readouterr().err
    assert main(["launch", "slurm", "--dry-run", "--profile=nope.yaml", "cluster_configs/tiny_sql_gpt.yaml"]) == 2
    assert "--profile nope.yaml does not exist" in capsys.readouterr().err


TINY = ["train.max_steps=12", "train.eval_every=6", "train.eval_batches=2", "tracking.tensorboard=false"]


@pytest.fixture
def on_slurm(monkeypatch, tmp_path):
    require_slurm()
    for name, value in job_env().items():
        monkeypatch.setenv(name, value)  # submitit's job inherits this environment
    monkeypatch.chdir(REPO)
    return load_profile(REPO / "cluster_configs/slurm/ci.yaml", {"cpus_per_task": 1})


@pytest.mark.slurm
def test_submitit_round_trip(on_slurm, tmp_path):
    profile = on_slurm.model_copy(update={"folder": str(tmp_path / "submitit")})
    config = str(REPO / "cluster_configs/tiny_llama_full.yaml")
    job = submit(config, [*TINY, f"output_dir={tmp_path / 'run'}"], profile, "ftdist-test")
    result = wait_for_result(job, 300)
    assert result["step"] == 12 and not result["preempted"]
    assert result["val_loss"] < 4.5
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


@pytest.mark.slurm
def test_submitit_job_preempted_is_requeued_and_finishes(on_slurm, tmp_path):
    """submitit's own interrupt (SIGTERM + USR2): the trainer saves, submitit requeues, the result comes back."""
    profile = on_slurm.model_copy(update={"folder": str(tmp_path / "submitit")})
    run = tmp_path / "run"
    overrides = ["train.max_steps=300", "train.eval_every=0", "train.log_every=5", "tracking.tensorboard=false"]
    job = submit(str(REPO / "cluster_configs/tiny_llama_full.yaml"), [*overrides, f"output_dir={run}"], profile, "t")
    wait_for_step(run, 10, job.job_id, 240)
    job._interrupt()  # what submitit's tests use: scancel --signal of a preemption
    result = wait_for_result(job, 400)
    assert result["step"] == 300 and not result["preempted"]
    restarts = subprocess.run(["scontrol", "show", "job", "-o", job.job_id], capture_output=True, text=True).stdout
    assert "Restarts=1" in restarts
    log = Path(profile.folder) / job.job_id
    assert "SLURM_RESTART_COUNT=1" in "".join(p.read_text() for p in log.glob("*_log.*"))


@pytest.mark.slurm
def test_gpus_on_a_partition_without_them_is_rejected_readably(on_slurm, tmp_path):
    profile = on_slurm.model_copy(update={"gpus_per_node": 1, "folder": str(tmp_path / "submitit")})
    with pytest.raises(FtdistError, match=r"Slurm rejected the job: .*(gres|generic resource)"):
        submit(str(REPO / "cluster_configs/tiny_llama_full.yaml"), TINY, profile, "ftdist-test")


def test_a_combination_that_cannot_run_is_refused_before_submitting(capsys, monkeypatch):
    """preflight runs with the world the profile describes (2 nodes x 8 GPUs = 16 processes), on the login node."""
    monkeypatch.chdir(REPO)
    argv = ["launch", "slurm", "--dry-run", "--nodes=2", "--gpus-per-node=8", "cluster_configs/tiny_llama_full.yaml"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "cannot run as 16 processes on cuda on 2 nodes" in err and "strategy: single runs one process" in err
    assert main([*argv, "strategy=ddp"]) == 0
