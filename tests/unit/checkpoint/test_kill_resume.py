"""A run killed with SIGKILL mid-way and resumed with `resume: auto` ends bitwise equal to an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO, run_cli, tiny_gpt_config
from ftdist.training.tracking import read_metrics

STEPS = ["train.max_steps=120", "checkpoint.every=20", "train.eval_every=40", "train.log_every=5"]


def _losses(run_dir):
    return [(e["step"], e.get("loss"), e.get("val_loss")) for e in read_metrics(run_dir)]


def test_sigkill_then_resume_matches_uninterrupted(tmp_path):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_gpt_config(tmp_path / "unused")))

    reference = run_cli("train", str(config_path), f"output_dir={tmp_path / 'ref'}", *STEPS)
    assert reference.returncode == 0, reference.stderr

    killed_dir = tmp_path / "killed"
    process = subprocess.Popen(
        [sys.executable, "-m", "ftdist", "train", str(config_path), f"output_dir={killed_dir}", *STEPS],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latest = killed_dir / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and not (latest.exists() and latest.read_text().strip() != "step-20"):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (killed_dir / "final").exists(), "the run finished before it could be killed"

    resumed = run_cli("train", str(config_path), f"output_dir={killed_dir}", *STEPS)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr

    expected = load_file(tmp_path / "ref" / "final" / "model.safetensors")
    actual = load_file(killed_dir / "final" / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resume"
    assert _losses(killed_dir) == _losses(tmp_path / "ref")  # one continuous curve, same values
