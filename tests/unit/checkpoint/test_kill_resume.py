"""A run killed with SIGKILL mid-way and resumed with `resume: auto` ends bitwise equal to an uninterrupted run."""

from __future__ import annotations

import torch
import yaml
from safetensors.torch import load_file

from conftest import run_cli, tiny_gpt_config, train_then_sigkill
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
    train_then_sigkill([str(config_path), f"output_dir={killed_dir}", *STEPS], killed_dir, past="step-20")

    resumed = run_cli("train", str(config_path), f"output_dir={killed_dir}", *STEPS)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from" in resumed.stderr

    expected = load_file(tmp_path / "ref" / "final" / "model.safetensors")
    actual = load_file(killed_dir / "final" / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), f"{name} differs after resume"
    assert _losses(killed_dir) == _losses(tmp_path / "ref")  # one continuous curve, same values
