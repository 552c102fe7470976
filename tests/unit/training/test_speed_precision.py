"""The CPU fast path: `precision: auto` turns bf16 autocast on for models wide enough to gain (on CPUs with
AMX / AVX512-BF16), keeps the loss curve within 1% of fp32, and `train.compile` trains the same model."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

import ftdist
from conftest import tiny_gpt_config
from ftdist.distributed.device import BF16_MIN_WIDTH, cpu_has_fast_bf16, pick_precision
from ftdist.training.tracking import read_metrics

CPU = torch.device("cpu")
fast_bf16 = pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no AMX / AVX512-BF16")


def test_auto_keeps_small_or_unknown_models_in_fp32():
    assert pick_precision("auto", CPU).name == "fp32"  # size unknown
    assert pick_precision("auto", CPU, BF16_MIN_WIDTH - 1).name == "fp32"  # the tiny SQL GPT is 64 wide
    assert pick_precision("fp32", CPU, 4096).name == "fp32"


@fast_bf16
def test_auto_picks_bf16_autocast_for_wide_models():
    precision = pick_precision("auto", CPU, BF16_MIN_WIDTH)
    assert precision.name == "bf16" and precision.autocast_dtype == torch.bfloat16 and not precision.grad_scaler


def _wide(run_dir, precision: str) -> dict:
    config = tiny_gpt_config(run_dir, max_steps=30, eval_every=0, log_every=10)
    config["optim"] = {"name": "adamw", "lr": 1e-3}
    config["model"] = {"tokenizer": "char", "scratch": {"family": "llama", "n_layer": 2, "n_head": 4, "n_embd": 256}}
    config["checkpoint"] = {"every": 0}
    config["precision"] = precision
    return config


@fast_bf16
def test_bf16_autocast_tracks_the_fp32_loss_within_one_percent(tmp_path):
    ftdist.train(_wide(tmp_path / "fp32", "fp32"))
    result = ftdist.train(_wide(tmp_path / "auto", "auto"))
    fp32 = [e["loss"] for e in read_metrics(tmp_path / "fp32") if "loss" in e]
    auto = [e["loss"] for e in read_metrics(tmp_path / "auto") if "loss" in e]
    assert auto[-1] == pytest.approx(fp32[-1], rel=0.01)
    assert auto[-1] < auto[0] - 0.5  # it trained
    weights = load_file(result.final_dir / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in weights.values())  # master weights stay fp32


@pytest.mark.slow
def test_compiled_model_trains_the_same_and_saves_plain_names(tmp_path):
    config = tiny_gpt_config(tmp_path / "eager", max_steps=6, eval_every=0, log_every=3)
    ftdist.train(config)
    compiled = dict(config, output_dir=str(tmp_path / "compiled"))
    result = ftdist.train(compiled, ["train.compile=true"])
    eager = [e["loss"] for e in read_metrics(tmp_path / "eager") if "loss" in e]
    assert [e["loss"] for e in read_metrics(tmp_path / "compiled") if "loss" in e] == pytest.approx(eager, rel=1e-4)
    names = load_file(result.final_dir / "model.safetensors").keys()
    assert not any("_orig_mod" in name for name in names)


def test_qlora_compute_dtype_auto_avoids_emulated_bf16():
    from ftdist.models.quantized import quant_compute_dtype

    fast = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32  # AVX2 CPUs multiply bf16 ~50x slower
    assert quant_compute_dtype("auto", "cpu") == fast
    assert quant_compute_dtype("bf16", "cpu") == torch.bfloat16 and quant_compute_dtype("fp32", "cpu") == torch.float32
