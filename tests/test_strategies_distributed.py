"""DDP, FSDP2 and DeepSpeed ZeRO-2/3(+offload) on 2 CPU processes (gloo), against a 1-process `single` run.

For each strategy, one 2-rank run of the tiny Llama (`cluster_configs/tiny_llama_full.yaml`, 6 steps,
micro-batch 4 x accumulation 2 x 2 ranks) must:
  * lower the loss;
  * reproduce the 1-rank run with the same global batch (micro 8 x accumulation 2) step by step: the stream
    sampler draws the global batch from one generator and each rank takes its slice, so both runs see the
    same sequences. Tolerance: 1e-5 relative, fp32 everywhere (measured differences are ~1e-7: only the
    order of the gradient sums differs);
  * resume from its step-3 checkpoint in a fresh process and end exactly where the uninterrupted run ended
    (for the variants the method x strategy matrix does not already kill and resume:
    tests/test_method_strategy_matrix.py);
  * consolidate offline (the strategy registry, `read_checkpoint_state`) into a model whose logits equal the
    trained model's: its validation loss equals the one the sharded model logged at the last step, and its
    weights equal `final/` (which the trainer gathered in-process).
DeepSpeed JIT-builds its shm_comm op on first use (~75 s cold, cached in ~/.cache/torch_extensions); no
other op is built: with offload on a CPU-only machine the optimizer is torch AdamW, not DeepSpeedCPUAdam.
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO, run_cli
from ftdist.config import load_config
from ftdist.data import build_data
from ftdist.env import DistEnv
from ftdist.export import load_trained
from ftdist.loss import count_label_tokens, token_loss_sum
from ftdist.strategies import read_checkpoint_state
from ftdist.tracking import read_metrics

pytestmark = pytest.mark.distributed

CONFIG = str(REPO / "cluster_configs" / "tiny_llama_full.yaml")
COMMON = [
    "train.max_steps=6",
    "train.grad_accum=2",
    "train.log_every=1",
    "train.eval_every=6",
    "train.eval_batches=2",
    "checkpoint.every=3",
    "checkpoint.keep_last=3",
    "tracking.progress=false",
]
STRATEGIES = {
    "ddp": ["strategy=ddp"],
    "fsdp": ["strategy=fsdp"],
    # checkpoint_wrapper inside each FSDP unit: DCP and export must see the plain parameter names
    "fsdp_checkpointed": ["strategy=fsdp", "strategy.activation_checkpointing=true"],
    "zero2": ["strategy.name=deepspeed", "strategy.zero_stage=2"],
    "zero3": ["strategy.name=deepspeed", "strategy.zero_stage=3"],
    "zero3_offload": ["strategy.name=deepspeed", "strategy.zero_stage=3", "strategy.offload_optimizer=cpu"],
}
RELATIVE_TOLERANCE = 1e-5
RESUMED_IN_THE_MATRIX = {"ddp", "fsdp", "zero2", "zero3"}  # killed and resumed there, for full and lora


def _launch(*overrides: str, nproc: int = 2) -> None:
    if nproc == 1:
        result = run_cli("train", CONFIG, *COMMON, *overrides, timeout=600)
    else:
        result = run_cli("launch", "local", "--nproc", str(nproc), CONFIG, *COMMON, *overrides, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def _curve(run_dir) -> dict[int, dict[str, float]]:
    """step -> {loss, val_loss} (training and evaluation are separate events of the same step)."""
    curve: dict[int, dict[str, float]] = {}
    for event in read_metrics(run_dir):
        curve.setdefault(event["step"], {}).update({k: event[k] for k in ("loss", "val_loss") if k in event})
    return curve


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The 1-process run: the same global batch (8 sequences x 2 micro-batches) on `single`."""
    run_dir = tmp_path_factory.mktemp("single") / "run"
    _launch(f"output_dir={run_dir}", "train.micro_batch_size=8", nproc=1)
    return run_dir


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_two_ranks_match_one_resume_and_export(strategy, reference, tmp_path):
    run_dir = tmp_path / "run"
    _launch(f"output_dir={run_dir}", "train.micro_batch_size=4", *STRATEGIES[strategy])
    curve, expected = _curve(run_dir), _curve(reference)

    assert curve[6]["loss"] < curve[1]["loss"] - 0.3, curve  # it learns
    assert curve.keys() == expected.keys()
    for step, values in expected.items():
        for key, value in values.items():
            assert math.isclose(curve[step][key], value, rel_tol=RELATIVE_TOLERANCE), (step, key, curve, expected)

    final = load_file(run_dir / "final" / "model.safetensors")
    if strategy not in RESUMED_IN_THE_MATRIX:
        # Resume from the step-3 checkpoint in a new process: steps 4-6 and the final weights are the same.
        resumed = tmp_path / "resumed"
        step3 = run_dir / "checkpoints" / "step-3"
        resume = [f"output_dir={resumed}", "train.micro_batch_size=4", f"checkpoint.resume={step3}"]
        _launch(*resume, *STRATEGIES[strategy])
        resumed_curve = _curve(resumed)
        assert sorted(resumed_curve) == [4, 5, 6]
        for step in (4, 5, 6):
            assert resumed_curve[step] == pytest.approx(curve[step], rel=1e-6, abs=0)
        _assert_same_weights(load_file(resumed / "final" / "model.safetensors"), final)

    # Offline export of the sharded checkpoint: the same weights as `final/`, and the same logits as the
    # trained (sharded) model, seen through the validation loss it logged at step 6.
    checkpoint = run_dir / "checkpoints" / "step-6"
    _assert_same_weights(read_checkpoint_state(checkpoint), final)
    model = load_trained(checkpoint)[0]
    assert _val_loss(model, run_dir) == pytest.approx(curve[6]["val_loss"], rel=1e-5)


def _assert_same_weights(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name].float(), tensor.float(), rtol=0, atol=1e-6, msg=name)


@torch.no_grad()
def _val_loss(model: torch.nn.Module, run_dir) -> float:
    """The validation loss the trainer computes at step 6, recomputed on one process with the exported model
    (the eval batches are a function of the seed and the step, and of the global batch, not of the rank)."""
    config = load_config(run_dir / "config.yaml", ["train.micro_batch_size=8"])
    _, data = build_data(config, DistEnv())
    losses = [
        token_loss_sum(model, batch, torch.device("cpu")) / count_label_tokens(batch)
        for batch in data.eval_batches("val", config.train.eval_batches, 6)
    ]
    return float(torch.stack(losses).mean())
