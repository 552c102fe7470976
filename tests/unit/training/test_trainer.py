"""End-to-end runs of the trainer on a tiny char-level GPT: loss falls, the run folder is complete, resume is exact."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

import ftdist
from ftdist.training.tracking import read_metrics


def test_loss_falls_and_run_folder_is_complete(tiny_config, tmp_path):
    result = ftdist.train(tiny_config, ["tracking.plots=true"])  # the default; the tiny configs turn it off
    run = tmp_path / "run"
    events = read_metrics(run)
    evals = [e for e in events if "val_loss" in e]
    assert [e["step"] for e in evals] == [10, 20, 30]
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.2
    train_events = [e for e in events if "loss" in e]
    assert {"loss", "lr", "tokens_per_s"} <= set(train_events[0])
    assert result.step == 30 and not result.preempted
    assert (run / "config.yaml").exists()
    assert (run / "checkpoints" / "latest").read_text().strip() == "step-30"
    assert sorted(p.name for p in (run / "checkpoints").glob("step-*")) == ["step-20", "step-30"]  # keep_last 2
    assert (run / "plots" / "loss.png").stat().st_size > 1000 and (run / "plots" / "lr.png").exists()
    assert any((run / "tb").iterdir())
    model = AutoModelForCausalLM.from_pretrained(run / "final")  # a plain HF folder, no ftdist code needed
    tokenizer = AutoTokenizer.from_pretrained(run / "final")
    assert tokenizer.decode(tokenizer("SELECT x")["input_ids"]) == "SELECT x"
    assert sum(p.numel() for p in model.parameters()) > 10_000


def test_resume_continues_exactly(tiny_config, tmp_path):
    ftdist.train(tiny_config)  # uninterrupted: 30 steps
    reference = load_file(tmp_path / "run" / "final" / "model.safetensors")
    reference_losses = [(e["step"], e["loss"]) for e in read_metrics(tmp_path / "run") if "loss" in e]

    split = dict(tiny_config, output_dir=str(tmp_path / "split"))
    ftdist.train(split, ["train.max_steps=20"])  # stops at 20 ...
    ftdist.train(split)  # ... and resumes from step-20 to 30
    resumed = load_file(tmp_path / "split" / "final" / "model.safetensors")
    for name, tensor in reference.items():
        assert torch.equal(tensor, resumed[name]), name
    assert [(e["step"], e["loss"]) for e in read_metrics(tmp_path / "split") if "loss" in e] == reference_losses


def test_gradient_accumulation_trains(tiny_config):
    result = ftdist.train(tiny_config, ["train.grad_accum=2", "train.micro_batch_size=4", "train.grad_clip=1.0"])
    assert result.metrics["val_loss"] < 3.5


def test_schedules_are_logged(tiny_config, tmp_path):
    ftdist.train(tiny_config, ["schedule.name=linear", "schedule.warmup_steps=5", "train.log_every=1"])
    rates = [e["lr"] for e in read_metrics(tmp_path / "run") if "lr" in e]
    assert rates[0] == pytest.approx(3e-3 * 2 / 5)  # logged after the step: factor for step 1
    assert max(rates) == pytest.approx(3e-3)
    assert rates[-1] < rates[10]


def test_eval_prompts_write_samples(tiny_config, tmp_path):
    ftdist.train(tiny_config, ["eval.prompts=[SELECT]", "generation.max_new_tokens=20"])
    sample = (tmp_path / "run" / "samples.txt").read_text()
    assert sample.startswith("### SELECT\nSELECT") and len(sample.splitlines()[1]) >= 20


def test_config_yaml_in_run_reloads(tiny_config, tmp_path):
    ftdist.train(tiny_config, ["train.max_steps=10"])
    config = ftdist.load_config(tmp_path / "run" / "config.yaml")
    assert config.train.max_steps == 10
    manifest = json.loads((tmp_path / "run" / "checkpoints" / "step-10" / "MANIFEST.json").read_text())
    assert "model.safetensors" in manifest["files"] and "trainer_state.rank0.pt" in manifest["files"]
