"""What a run writes and logs, as users of HF Trainer expect: interval-mean losses, interval rates, no
checkpoints when `checkpoint.every: 0`, and no bitsandbytes notice on a plain LoRA run."""

from __future__ import annotations

import subprocess
import sys

import pytest

import ftdist
from conftest import REPO, tiny_gpt_config
from ftdist.training.tracking import read_metrics


def _train_events(run_dir):
    return [e for e in read_metrics(run_dir) if "loss" in e]


def test_logged_loss_is_the_mean_over_the_interval(tmp_path):
    every_step = tiny_gpt_config(tmp_path / "a", max_steps=10, eval_every=0, log_every=1)
    every_five = tiny_gpt_config(tmp_path / "b", max_steps=10, eval_every=0, log_every=5)
    ftdist.train(every_step)
    ftdist.train(every_five)
    single = [e["loss"] for e in _train_events(tmp_path / "a")]
    means = [(e["step"], e["loss"]) for e in _train_events(tmp_path / "b")]
    assert [step for step, _ in means] == [5, 10]
    assert means[0][1] == pytest.approx(sum(single[:5]) / 5, rel=1e-6)
    assert means[1][1] == pytest.approx(sum(single[5:]) / 5, rel=1e-6)
    assert means[0][1] != pytest.approx(single[4], rel=1e-6)  # not the logged step's own loss
    assert all(e["tokens_per_s"] > 0 for e in _train_events(tmp_path / "b"))


def test_resume_inside_an_interval_logs_the_same_mean(tmp_path):
    """Checkpoints every 3 steps, logs every 2: the step-3 checkpoint carries half of the window 3..4."""
    config = tiny_gpt_config(tmp_path / "ref", max_steps=8, eval_every=0, log_every=2)
    config["checkpoint"] = {"every": 3, "keep_last": 5}
    ftdist.train(config)
    resumed = dict(config, output_dir=str(tmp_path / "resumed"))
    ftdist.train(resumed, [f"checkpoint.resume={tmp_path / 'ref' / 'checkpoints' / 'step-3'}"])
    reference = [(e["step"], e["loss"]) for e in _train_events(tmp_path / "ref") if e["step"] > 3]
    assert [(e["step"], e["loss"]) for e in _train_events(tmp_path / "resumed")] == reference


def test_checkpoint_every_zero_writes_no_checkpoint_but_final(tmp_path):
    config = tiny_gpt_config(tmp_path / "run", max_steps=6, eval_every=0)
    config["checkpoint"] = {"every": 0}
    result = ftdist.train(config)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not checkpoints.exists() or not any(checkpoints.glob("step-*"))
    assert (result.final_dir / "model.safetensors").exists()


def test_plain_lora_prints_no_bitsandbytes_kernel_notice():
    """peft imports bitsandbytes; on AVX512-BF16 CPUs without `kernels` it logs a 4-bit notice, irrelevant here."""
    code = "import ftdist.methods.lora"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "gemm_4bit" not in done.stderr and "kernels" not in done.stderr
