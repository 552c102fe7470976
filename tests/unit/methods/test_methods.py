"""Full, LoRA and QLoRA end to end on CPU: a tiny Llama built from config and the tiny SQL GPT (pretrained here
for a few steps and loaded from its HF folder). Real peft and real bitsandbytes 4-bit NF4 on the CPU."""

from __future__ import annotations

import json

import pytest
import torch

import ftdist
from ftdist.config import load_config
from ftdist.trainer import Trainer

TINY_LLAMA = {
    "tokenizer": "char",
    "scratch": {"family": "llama", "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64},
}


def run_config(out, method, model, steps=8, **extra):
    config = {
        "name": "t",
        "output_dir": str(out),
        "method": method,
        "model": model,
        "data": {"recipe": "stream", "path": "builtin:tiny_sql_corpus.txt", "seq_len": 32},
        "optim": {"name": "adamw", "lr": 1e-2},
        "train": {"max_steps": steps, "micro_batch_size": 8, "eval_every": 4, "eval_batches": 2, "log_every": 1},
        "checkpoint": {"every": 4},
        "tracking": {"progress": False},
    }
    config.update(extra)
    return config


def losses(run_dir):
    return [json.loads(line)["loss"] for line in open(run_dir / "metrics.jsonl") if '"loss"' in line]


@pytest.fixture(scope="session")
def tiny_sql_gpt(tmp_path_factory):
    """The tiny SQL GPT (gpt2 family), pre-trained for a few steps and saved as an HF folder: a real `model.path`."""
    out = tmp_path_factory.mktemp("tiny_sql_gpt")
    config = load_config(
        "cluster_configs/tiny_sql_gpt.yaml",
        [f"output_dir={out}", "train.max_steps=20", "train.eval_every=0", "tracking.progress=false"],
    )
    return {"path": str(ftdist.train(config).final_dir), "tokenizer": None}


def base_weights(model):
    """Frozen base tensors by their pre-peft names (peft moves a wrapped layer's weight under `base_layer`)."""
    model = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {
        name.replace(".base_layer", ""): p.detach().clone()
        for name, p in model.named_parameters()
        if "lora_" not in name
    }


@pytest.mark.parametrize("method", ["full", "lora", "qlora"])
@pytest.mark.parametrize("base", ["tiny_llama", "tiny_sql_gpt"])
def test_method_trains_only_what_it_should(tmp_path, method, base, request):
    model = TINY_LLAMA if base == "tiny_llama" else {k: v for k, v in request.getfixturevalue(base).items() if v}
    trainer = Trainer(run_config(tmp_path / "run", method, model, steps=12, optim={"name": "adamw", "lr": 3e-2}))
    result = trainer.fit()
    curve = losses(result.run_dir)
    # The loss falls (mean of the last 3 steps below the first 3), with evaluations every 4 steps in between.
    assert sum(curve[-3:]) / 3 < sum(curve[:3]) / 3 - 0.03, curve
    after = base_weights(trainer.model)
    rebuilt = Trainer(run_config(tmp_path / "fresh", method, model))
    rebuilt.config = trainer.config  # same base folder (run_dir/base for scratch models)
    from ftdist.methods import apply_method
    from ftdist.models import build_model

    before = base_weights(apply_method(build_model(trainer.config, trainer.tokenizer), trainer.config))
    assert before.keys() == after.keys()
    # bitsandbytes' Linear4bit casts its bias to the compute dtype in place at the first forward: compare in the
    # dtype each tensor has now, so that cast is not mistaken for training.
    changed = {name for name in before if not torch.equal(before[name].to(after[name].dtype), after[name])}
    if method == "full":
        assert len(changed) > len(before) // 2  # every weight trains (a few get no gradient from this data)
    else:
        assert changed == set(), f"{method} changed base weights: {sorted(changed)[:5]}"
        trainable = [n for n, p in trainer.model.named_parameters() if p.requires_grad]
        assert trainable and all("lora_" in n for n in trainable)
    if method == "qlora":
        from bitsandbytes.nn import Linear4bit

        assert any(isinstance(m, Linear4bit) for m in trainer.model.modules())
    assert (result.final_dir / ("adapter_config.json" if method != "full" else "config.json")).exists()


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_save_reload_continue_matches_uninterrupted(tmp_path, method):
    ftdist.train(run_config(tmp_path / "straight", method, TINY_LLAMA, steps=8))
    ftdist.train(run_config(tmp_path / "resumed", method, TINY_LLAMA, steps=4))
    ftdist.train(run_config(tmp_path / "resumed", method, TINY_LLAMA, steps=8))
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert len(resumed) == 8
    assert resumed == pytest.approx(straight, abs=1e-6)
    checkpoint = tmp_path / "resumed" / "checkpoints" / "step-4" / "model.safetensors"
    assert checkpoint.stat().st_size < 200_000  # adapters only, not the base
