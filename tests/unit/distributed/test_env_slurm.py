"""Slurm parts of the environment module and of preemption that need no cluster.

- the head address and port of a job launched with one srun task per process (no torchrun);
- SLURM_RESTART_COUNT is read;
- a preemption signal during a checkpoint write only sets the flag: the write finishes; a process that dies
  mid-write leaves the previous checkpoint as `latest`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from ftdist.checkpoint.folders import CheckpointFolders, resolve_resume, verify
from ftdist.distributed.env import detect_env
from ftdist.distributed.rendezvous import first_slurm_host, slurm_rendezvous
from ftdist.errors import FtdistError
from ftdist.training.preemption import PreemptionFlag


def test_rendezvous_from_a_single_host_job():
    env = {"SLURM_JOB_NODELIST": "vm", "SLURM_JOB_ID": "123456"}
    assert slurm_rendezvous(env) == {"MASTER_ADDR": "vm", "MASTER_PORT": str(20000 + 123456 % 20000)}


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="scontrol (slurm-client) is not installed")
def test_rendezvous_expands_a_bracketed_node_list_with_scontrol():
    assert first_slurm_host("gpu[07-09,12]") == "gpu07"


@pytest.mark.skipif(shutil.which("scontrol") is None, reason="scontrol (slurm-client) is not installed")
def test_a_head_node_name_that_does_not_resolve_is_named_with_what_to_check():
    """Every task, and the sbatch script, stops at the name, not at a timeout
    (`python -m ftdist.distributed.rendezvous`)."""
    job = {"SLURM_JOB_NODELIST": "nosuchnode-ci[1-2]", "SLURM_JOB_ID": "42"}
    with pytest.raises(FtdistError, match=r"head node name 'nosuchnode-ci1' \(first of SLURM_JOB_NODELIST="):
        slurm_rendezvous(job)
    done = subprocess.run(
        [sys.executable, "-m", "ftdist.distributed.rendezvous"],
        env={**os.environ, **job},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "does not resolve" in done.stderr and "getent hosts nosuchnode-ci1" in done.stderr, done.stderr


def test_restart_count_is_read_with_or_without_tasks():
    assert detect_env({"SLURM_RESTART_COUNT": "2"}).restart_count == 2
    slurm = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_RESTART_COUNT": "1"}
    assert detect_env(slurm).restart_count == 1
    assert detect_env({}).restart_count == 0


def _write(folder, step):
    torch.save({"w": torch.full((4,), float(step))}, folder / "model.pt")


def test_signal_during_checkpoint_write_keeps_checkpoints_valid(tmp_path):
    manager = CheckpointFolders(tmp_path, keep_last=3)
    manager.save(10, lambda folder: _write(folder, 10))
    flag = PreemptionFlag()
    try:

        def write_with_signal(folder):
            os.kill(os.getpid(), signal.SIGUSR1)  # Slurm's warning arrives mid-write
            _write(folder, 20)

        manager.save(20, write_with_signal)
        assert flag.received == "SIGUSR1" and flag.should_stop()
    finally:
        flag.restore()
    assert verify(tmp_path / "step-20") is None
    assert manager.latest() == tmp_path / "step-20"

    def killed_mid_write(folder):  # the job is killed (KillWait ran out) halfway through the next save
        (folder / "model.pt").write_bytes(b"partial")
        raise SystemExit(137)

    with pytest.raises(SystemExit):
        manager.save(30, killed_mid_write)
    assert resolve_resume(tmp_path, "auto") == tmp_path / "step-20"
    assert torch.load(tmp_path / "step-20" / "model.pt", weights_only=True)["w"][0] == 20
