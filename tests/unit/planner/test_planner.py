"""`ftdist plan` and the analytic planner: shapes from config.json, presets, the shipped configs on the hardware
their comments name, JSON output, `strategy: auto`, and the bad-input messages. No torch needed in the code
under test (one test checks that in a fresh interpreter)."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftdist.cli import main
from ftdist.config import load_config
from ftdist.errors import FtdistError
from ftdist.planner import build_hardware, parse_bytes, predict_peak_bytes, recommend_for_config
from ftdist.planner.candidates import Candidate, candidate_from_config
from ftdist.planner.catalogue import CATALOGUE, catalogue_shape
from ftdist.planner.hardware import GiB
from ftdist.planner.recommend import evaluate
from ftdist.planner.workload import workload_from_config

REPO = Path(__file__).resolve().parents[3]
CONFIGS = REPO / "cluster_configs"

# The hardware each shipped config's comment names ("Hardware: ..."), as `ftdist plan` flags.
SHIPPED_HARDWARE = {
    "dpo_llama2_7b_sql.yaml": ["--gpu", "a100-40"],  # "one 40-80 GB GPU for LoRA"
    "dpo_smollm2_sql.yaml": ["--gpu", "cpu"],  # "one GPU, or a CPU"
    "full_finetune_smollm2.yaml": ["--gpu", "cpu"],  # "one GPU, or a CPU"
    "llama2_13b_full_fsdp.yaml": ["--gpu", "a100-80", "--gpus", "8"],  # "one node with 8 x 80 GB GPUs"
    "llama2_13b_full_zero3_offload.yaml": ["--gpu", "a100-80", "--gpus", "8", "--cpu-mem", "512GiB"],
    "llama2_7b_full_paged_adamw.yaml": ["--gpu", "a100-80", "--cpu-mem", "64GiB"],  # "one 80 GB GPU, >= 64 GB RAM"
    "llama2_7b_full_zero3.yaml": ["--gpu", "a100-80", "--gpus", "8"],
    "lora_gpt2_large_bible.yaml": ["--gpu", "t4"],  # "one GPU (about 8 GB)"
    "lora_smollm2_gguf.yaml": ["--gpu", "cpu"],
    "lora_tiny_sql_gpt.yaml": ["--gpu", "cpu"],  # "any"
    "qlora_llama2_7b_sql.yaml": ["--gpu", "t4"],  # "one CUDA GPU", 10-14 GB
    "tiny_llama_bible_qa.yaml": ["--gpu", "cpu"],
    "tiny_llama_full.yaml": ["--gpu", "cpu"],
    "tiny_sql_gpt.yaml": ["--gpu", "cpu"],
}

# Configs whose own strategy does not fit the named hardware by the planner's model, and why. None today:
# gpt2-large LoRA at micro-batch 8 x 512 tokens without checkpointing was here (about 11 GiB of activations plus
# 3 GiB of logits: 14.6 of a T4's 15.0 GiB once its frozen base loaded in fp16). The chunked loss
# (train.chunked_loss, on by default for its 205 M logits) holds one chunk of logits (0.2 GiB), so it needs
# 12.0 GiB and fits with the 10% headroom; the check below then holds it to `fits` like every other config.
OWN_STRATEGY_NEEDS_CHECKPOINTING: set[str] = set()

# Parameter counts of the public checkpoints (from their model cards / safetensors index totals).
PUBLIC_COUNTS = {
    "meta-llama/Llama-2-7b-hf": 6_738_415_616,
    "meta-llama/Llama-2-13b-hf": 13_015_864_320,
    "meta-llama/Llama-2-70b-hf": 68_976_648_192,
    "openai-community/gpt2": 124_439_808,
    "openai-community/gpt2-large": 774_030_080,
    "HuggingFaceTB/SmolLM2-135M": 134_515_008,
}


def plan_json(capsys, *args: str) -> tuple[int, dict]:
    code = main(["plan", *args, "--json"])
    return code, json.loads(capsys.readouterr().out)


def tiny_gpt_folder(tmp_path: Path) -> Path:
    """What `ftdist train cluster_configs/tiny_sql_gpt.yaml` leaves in runs/tiny_sql_gpt/final: its config.json."""
    folder = tmp_path / "final"
    folder.mkdir()
    fields = {
        "model_type": "gpt2",
        "vocab_size": 218,
        "n_positions": 32,
        "n_embd": 64,
        "n_layer": 4,
        "n_head": 4,
        "tie_word_embeddings": False,
    }
    (folder / "config.json").write_text(json.dumps(fields))
    return folder


@pytest.mark.parametrize("name", sorted(PUBLIC_COUNTS))
def test_catalogue_counts_match_the_public_checkpoints(name: str) -> None:
    assert catalogue_shape(name).total_params() == PUBLIC_COUNTS[name]


def test_every_catalogue_entry_plans() -> None:
    hardware = build_hardware("a100-80", None, 8, 1, None)
    for name in CATALOGUE:
        shape = catalogue_shape(name)
        assert shape.total_params() > 1e8 and shape.source == "catalogue"
        assert shape.largest_param() <= shape.total_params()
    assert hardware.world == 8


def test_tiny_sql_gpt_scratch_shape_counts_like_transformers() -> None:
    """models/scratch.py documents 230,016 parameters for the tiny SQL GPT (218 characters, untied head)."""
    workload = workload_from_config(load_config(CONFIGS / "tiny_sql_gpt.yaml"))
    assert workload.shape.vocab == 218
    assert workload.shape.total_params() == 230_016


def test_memory_sizes_parse() -> None:
    assert parse_bytes("80GiB") == 80 * GiB
    assert parse_bytes("80GB") == 80 * 1000**3
    assert parse_bytes("512 MiB") == 512 * 2**20
    with pytest.raises(FtdistError, match="80GiB"):
        parse_bytes("eighty")


@pytest.mark.parametrize("name", sorted(SHIPPED_HARDWARE))
def test_shipped_config_fits_the_hardware_its_comment_names(name: str, capsys, tmp_path: Path) -> None:
    extra = ["--set", f"model.path={tiny_gpt_folder(tmp_path)}"] if name == "lora_tiny_sql_gpt.yaml" else []
    code, body = plan_json(capsys, str(CONFIGS / name), *SHIPPED_HARDWARE[name], *extra)
    assert code == 0, body["what_would_fit"]
    config = load_config(CONFIGS / name, [e for e in extra if e != "--set"])
    own = candidate_from_config(config.strategy, body["hardware"]["gpus_per_node"])
    rows = {row["strategy"]: row for row in body["strategies"]}
    if name in OWN_STRATEGY_NEEDS_CHECKPOINTING:
        assert not rows[own.label]["fits_with_margin"] and body["recommended"]["section"]["activation_checkpointing"]
    else:
        assert rows[own.label]["fits"], (
            f"{name}: its own strategy {own.label} does not fit: {rows[own.label]['why_not']}"
        )
    for row in body["strategies"]:
        assert row["peak_bytes"] == max(row["phases_bytes"].values())
        assert row["need_bytes"] >= row["peak_bytes"] > 0


def test_every_run_config_in_cluster_configs_is_covered() -> None:
    assert sorted(p.name for p in CONFIGS.glob("*.yaml")) == sorted(SHIPPED_HARDWARE)


def test_table_names_the_catalogue_and_recommends(capsys) -> None:
    assert main(["plan", str(CONFIGS / "llama2_13b_full_fsdp.yaml"), "--gpus", "8", "--gpu-mem", "80GiB"]) == 0
    out = capsys.readouterr().out
    assert "from the shipped catalogue" in out and "recommended:" in out and "zero3 offload opt+param" in out


def test_sharding_and_checkpointing_lower_the_peak() -> None:
    config = load_config(CONFIGS / "llama2_13b_full_fsdp.yaml")
    workload = workload_from_config(config)
    hardware = build_hardware("a100-80", None, 8, 1, None)

    def peak(**kw) -> int:
        return evaluate(workload, Candidate(**kw), hardware).estimate.peak

    assert peak(strategy="fsdp", world=8, checkpointing=True) < peak(strategy="fsdp", world=8, checkpointing=False)
    assert peak(strategy="fsdp", world=8, checkpointing=True) < peak(strategy="ddp", world=8, checkpointing=True)
    z2 = peak(strategy="deepspeed", world=8, checkpointing=True, zero_stage=2)
    assert peak(strategy="deepspeed", world=8, checkpointing=True, zero_stage=3) < z2


def test_lora_and_qlora_need_less_than_full() -> None:
    hardware = build_hardware("a100-80", None, 1, 1, None)
    base = [
        "model.path=meta-llama/Llama-2-7b-hf",
        "data.seq_len=2048",
        "train.micro_batch_size=2",
        "strategy.activation_checkpointing=true",
        "precision=bf16",
    ]
    peaks = {}
    for method in ("full", "lora", "qlora"):
        config = load_config(
            CONFIGS / "tiny_llama_full.yaml", [*base, f"method={method}", "model.scratch=null", "model.tokenizer=null"]
        )
        peaks[method] = predict_peak_bytes(config, 1, hardware)
    assert peaks["qlora"] < peaks["lora"] < peaks["full"]
    # The study's "about 18 GB" is a 16-bit base. ftdist loaded the frozen base in fp32 (the planner said 25-35 GiB
    # here); since issue 22 it loads it in the compute dtype, as the study did, so the planner's figure is the
    # study's range (it was the `param_bytes=2` workload's figure alone before).
    assert 14 * GiB < peaks["lora"] < 22 * GiB
    workload = dataclasses.replace(workload_from_config(config), method="lora", param_bytes=2)
    study = evaluate(workload, Candidate("single", 1, True), hardware).estimate.peak
    assert 14 * GiB < study < 22 * GiB


def test_recommend_for_config_gives_a_strategy_section() -> None:
    section, reason = recommend_for_config(CONFIGS / "llama2_13b_full_fsdp.yaml", 8, "a100-80")
    assert section["name"] in ("fsdp", "deepspeed") and "GiB per device" in reason
    load_config(
        CONFIGS / "llama2_13b_full_fsdp.yaml",
        [f"strategy.{k}={v}" for k, v in section.items() if k not in ("deepspeed_config",)]
        if section["name"] == "fsdp"
        else [],
    )


def test_recommend_refuses_a_world_the_hardware_does_not_give() -> None:
    hardware = build_hardware("a100-80", None, 8, 1, None)
    with pytest.raises(FtdistError, match="16 processes.*8 devices"):
        recommend_for_config(CONFIGS / "llama2_13b_full_fsdp.yaml", 16, hardware)


def test_recommend_says_what_would_fit_when_nothing_does() -> None:
    with pytest.raises(FtdistError, match="What would:.*method: qlora"):
        recommend_for_config(CONFIGS / "llama2_7b_full_paged_adamw.yaml", 1, "t4")


def test_nothing_fits_exits_1_and_names_what_would(capsys) -> None:
    code, body = plan_json(capsys, str(CONFIGS / "llama2_13b_full_fsdp.yaml"), "--gpu", "t4")
    assert code == 1 and body["recommended"] is None
    assert body["what_would_fit"] and any("T4" in s or "method:" in s for s in body["what_would_fit"])


def test_unknown_gpu_preset_lists_the_known_ones(capsys) -> None:
    assert main(["plan", str(CONFIGS / "tiny_llama_full.yaml"), "--gpu", "a100-800"]) == 2
    err = capsys.readouterr().err
    assert "a100-800 is not a known device" in err and "h100-80" in err and "t4" in err


def test_unreadable_model_config_names_the_path_and_why(capsys, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    assert main(["plan", str(CONFIGS / "lora_gpt2_large_bible.yaml"), "--set", f"model.path={folder}"]) == 2
    err = capsys.readouterr().err
    assert str(folder / "config.json") in err and "not JSON" in err
    untrained = tmp_path / "runs" / "tiny_sql_gpt" / "final"  # a base run that has not been trained (yet)
    assert main(["plan", str(CONFIGS / "lora_tiny_sql_gpt.yaml"), "--set", f"model.path={untrained}"]) == 2
    assert "config.json does not exist" in capsys.readouterr().err


def test_plan_does_not_import_torch() -> None:
    """The planner and the plan command import no torch/deepspeed/ray (the config loader is the integrator's)."""
    code = (
        "import sys, ftdist.planner, ftdist.commands.plan, ftdist.planner.report; "
        "print([m for m in ('torch', 'deepspeed', 'ray') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True).stdout
    assert out.strip() == "[]"


def test_apple_preset_and_plain_memory_size(capsys) -> None:
    code, body = plan_json(capsys, str(CONFIGS / "tiny_llama_full.yaml"), "--gpu", "m1-16")
    assert code == 0 and body["hardware"]["device"] == "Apple M1 16GB"
    assert body["hardware"]["device_bytes"] < 16 * GiB  # the share Metal lets one process wire
    code, body = plan_json(capsys, str(CONFIGS / "qlora_llama2_7b_sql.yaml"), "--gpu-mem", "24GiB")
    assert code == 0 and body["hardware"]["device_bytes"] == 24 * GiB
    assert body["model"]["from_catalogue"] is True
