"""The strategy registry reads a `single` checkpoint offline (the sharded formats are covered, on real 2-rank
checkpoints, in test_strategies_distributed.py and test_method_strategy_matrix.py)."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from conftest import REPO
from ftdist import train
from ftdist.run_folder import load_trained
from ftdist.strategies import checkpoint_owner, read_checkpoint_state


def test_single_checkpoint_consolidates_to_the_final_model(tmp_path):
    overrides = [
        f"output_dir={tmp_path}",
        "train.max_steps=2",
        "schedule.warmup_steps=0",
        "train.eval_every=0",
        "tracking.progress=false",
    ]
    result = train(REPO / "cluster_configs" / "tiny_llama_full.yaml", overrides)
    checkpoint = tmp_path / "checkpoints" / "step-2"
    assert checkpoint_owner(checkpoint).checkpoint_format == "whole"
    final = load_file(result.final_dir / "model.safetensors")
    state = read_checkpoint_state(checkpoint)
    assert state.keys() == final.keys() and all(torch.equal(state[k], final[k]) for k in final)
    inputs = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        logits = load_trained(checkpoint)[0](inputs).logits
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(result.final_dir).eval()(inputs).logits
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
