"""Bad input for fine-tuning methods fails early with a message that names the key and the fix; the LoRA
merge round trip is exact in fp32; bitsandbytes optimizers run or refuse explicitly on CPU."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from test_methods import TINY_LLAMA, losses, run_config

import ftdist
from ftdist.config import load_config
from ftdist.errors import ConfigError, FtdistError
from ftdist.export import merge
from ftdist.run_folder import load_trained


def test_unknown_target_module_lists_linear_layers(tmp_path):
    model = {**TINY_LLAMA}
    with pytest.raises(FtdistError, match=r"c_attn match no linear layer.*q_proj.*v_proj"):
        ftdist.train(run_config(tmp_path, {"name": "lora", "lora": {"target_modules": ["c_attn"]}}, model))


def test_paged_optimizer_on_cpu_errors_or_falls_back_once(tmp_path):
    with pytest.raises(FtdistError, match=r"paged_adamw_8bit.*CUDA.*on_unsupported=fallback"):
        ftdist.train(run_config(tmp_path / "a", "lora", TINY_LLAMA, optim={"name": "paged_adamw_8bit"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        config = run_config(
            tmp_path / "b",
            "lora",
            TINY_LLAMA,
            steps=4,
            optim={"name": "paged_adamw_32bit", "lr": 1e-2, "on_unsupported": "fallback"},
        )
        ftdist.train(config)
    said = [w for w in caught if "paging needs CUDA" in str(w.message)]
    assert len(said) == 1 and "AdamW32bit" in str(said[0].message)


def test_adamw_8bit_trains_on_cpu(tmp_path):
    ftdist.train(run_config(tmp_path, "lora", TINY_LLAMA, steps=8, optim={"name": "adamw_8bit", "lr": 3e-2}))
    curve = losses(tmp_path)
    assert sum(curve[-3:]) < sum(curve[:3])


def test_missing_base_path(tmp_path):
    with pytest.raises(FtdistError, match="does not exist"):
        ftdist.train(run_config(tmp_path, "lora", {"path": str(tmp_path / "nowhere")}))


def test_missing_gguf_file(tmp_path):
    with pytest.raises(FtdistError, match=r"model.gguf_file=missing.gguf does not exist"):
        ftdist.train(run_config(tmp_path, "lora", {"path": str(tmp_path), "gguf_file": "missing.gguf"}))


def test_qlora_on_an_unservable_setup():
    from ftdist.preflight import World, preflight

    config = load_config(run_config("runs/x", "qlora", TINY_LLAMA, device="mps"))  # the file alone is fine
    with pytest.raises(ConfigError, match="no MPS backend"):
        preflight(config, World(1, "mps"))
    from ftdist.models.quantized import check_bitsandbytes_serves

    with pytest.raises(FtdistError, match="no 4-bit kernels for mps"):
        check_bitsandbytes_serves("mps")


def test_lora_settings_on_a_full_run_are_rejected():
    with pytest.raises(ConfigError, match="method.lora is set but method.name=full"):
        load_config(run_config("runs/x", {"name": "full", "lora": {"r": 4}}, TINY_LLAMA))


def test_method_defaults_follow_the_papers():
    qlora = load_config(run_config("runs/x", "qlora", TINY_LLAMA)).method
    assert (qlora.lora.r, qlora.lora.alpha, qlora.lora.dropout) == (64, 16.0, 0.1)
    assert qlora.quantization.quant_type == "nf4" and qlora.quantization.double_quant


def test_lora_merge_round_trip_fp32(tmp_path):
    result = ftdist.train(
        run_config(tmp_path / "run", "lora", TINY_LLAMA, steps=6, optim={"name": "adamw", "lr": 5e-2})
    )
    adapter, tokenizer, _ = load_trained(result.run_dir)
    merged_dir = merge(result.run_dir)
    merged, _, _ = load_trained(merged_dir)
    assert not any("lora" in name for name, _ in merged.named_parameters())
    ids = torch.tensor([tokenizer("SELECT name FROM t WHERE id = 3")["input_ids"]])
    with torch.no_grad():
        want, got = adapter(input_ids=ids).logits, merged(input_ids=ids).logits
    base, _, _ = load_trained(Path(result.run_dir) / "base")
    with torch.no_grad():
        assert (base(input_ids=ids).logits - want).abs().max() > 1e-3  # the adapter did change the model
    assert (want - got).abs().max() < 1e-4
