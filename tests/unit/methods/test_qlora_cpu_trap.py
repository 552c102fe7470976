"""Regression for the AVX512-BF16 trap (../shared/notes/cpu.md, check 5): an eval-mode no-grad forward through a
bitsandbytes Linear4bit repacks its weight; afterwards training gets no gradients and merging is wrong.
ftdist pins the 4-bit layers (`ftdist.methods.lora.pin_4bit_layout`); these tests prove evaluation is harmless."""

from __future__ import annotations

import pytest
import torch
from test_methods import TINY_LLAMA, losses, run_config

from ftdist.export import merge
from ftdist.run_folder import load_trained
from ftdist.trainer import Trainer


def test_loss_falls_after_eval_and_merge_matches_adapter(tmp_path):
    trainer = Trainer(
        run_config(
            tmp_path / "run",
            "qlora",
            TINY_LLAMA,
            steps=12,
            train={"max_steps": 12, "micro_batch_size": 8, "eval_every": 2, "eval_batches": 1, "log_every": 1},
        )
    )
    result = trainer.fit()
    curve = losses(result.run_dir)
    assert sum(curve[-3:]) < sum(curve[2:5]) - 0.05, curve  # still falling after the first eval passes

    # Gradients still reach the adapters after evaluation.
    model, batch = trainer.model, next(iter(trainer.data.eval_batches("val", 1, 0)))
    model.train()
    model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if "lora_" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)

    # The merged fp32 model equals the adapter on its 4-bit base, within the bf16 compute dtype's rounding.
    ids = batch["input_ids"][:2]
    adapter, _, _ = load_trained(result.run_dir)
    merged, _, _ = load_trained(merge(result.run_dir))
    with torch.no_grad():
        want, got = adapter(input_ids=ids).logits, merged(input_ids=ids).logits
    assert (want - got).abs().max() < 0.02 * want.abs().max()
    with torch.no_grad():  # and the in-memory adapter model (4-bit base, evaluated many times) agrees too
        trained = trainer.model.eval()(input_ids=ids).logits.float()
    assert (trained - got).abs().max() < 0.05 * want.abs().max()


def test_unpinned_layer_repacks_on_this_cpu():
    """The trap is real here (so the test above exercises it): skip where bitsandbytes does not repack."""
    import bitsandbytes as bnb
    from bitsandbytes.functional import has_avx512bf16

    if not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16: bitsandbytes never repacks 4-bit weights here")
    layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.bfloat16, quant_type="nf4").to("cpu")
    layer.weight = bnb.nn.Params4bit(torch.randn(64, 64), requires_grad=False, quant_type="nf4").to("cpu")
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(2, 64))
    assert layer.weight.quant_state.packing_format_for_cpu  # the unpinned layer took the inference-only layout

    from ftdist.methods.lora import pin_4bit_layout

    pin_4bit_layout(layer)  # undoes it, and keeps it from happening again
    assert not layer.weight.quant_state.packing_format_for_cpu
    with torch.no_grad():
        layer(torch.randn(2, 64))
    assert not layer.weight.quant_state.packing_format_for_cpu
