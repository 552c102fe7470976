"""`ftdist doctor`: the table of checks on 2 CPU ranks for the tiny Llama, and failures with their fixes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import REPO, run_cli

CONFIG = "cluster_configs/tiny_llama_full.yaml"


@pytest.mark.distributed
def test_doctor_two_ranks_passes_with_every_row(tmp_path):
    # The command as a user types it; from tmp_path, so its output_dir (runs/tiny_llama_full) lands there
    result = run_cli("doctor", str(REPO / CONFIG), "--nproc", "2", cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = result.stdout
    for row in ("packages", "device, precision", "all_reduce", "shared output_dir", "2-step run"):
        assert row in table
    assert "torch 2." in table and "transformers" in table and "submitit" in table
    assert "cpu (auto), fp32 (auto)" in table
    assert "gloo, 2 ranks" in table and "GB/s" in table
    assert "read back by every rank" in table
    assert "full x ddp, tiny llama: 2 steps" in table and "train it with strategy=ddp" in table  # single x2: warn
    assert "FAIL" not in table
    assert not list((tmp_path / "runs" / "tiny_llama_full" / ".doctor").iterdir())  # markers and run cleaned up


def test_doctor_fails_with_the_fix(tmp_path):
    """A device this machine lacks (CUDA hidden; on a CPU machine there is none anyway) and an output_dir that
    cannot be written: exit 1, each row FAIL, each with its fix."""
    result = run_cli("doctor", CONFIG, "device=cuda", env={"CUDA_VISIBLE_DEVICES": ""}, timeout=120)
    assert result.returncode == 1
    assert "device, precision failed" in result.stdout and "Set device: auto or device: cpu" in result.stdout
    result = run_cli("doctor", CONFIG, "output_dir=/proc/ftdist-doctor", timeout=120)
    assert result.returncode == 1
    assert "shared output_dir failed: rank 0 cannot write /proc/ftdist-doctor" in result.stdout
    assert "Fix: put output_dir" in result.stdout


def test_help_does_not_import_torch():
    code = "import sys; from ftdist.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr[-2000:]
