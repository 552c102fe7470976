"""The strategy variants that the method x strategy matrix does not run, on 2 CPU processes (gloo), against the
1-process run of the same global batch (tests/tiny_llama_runs.py): FSDP2 with activation checkpointing (a
checkpoint_wrapper inside each FSDP unit: DCP and export must see the plain parameter names) and ZeRO-3 with
the optimizer offloaded to the CPU. The matrix (tests/distributed/test_method_strategy_matrix.py) holds DDP,
FSDP2, ZeRO-2 and ZeRO-3 to the same 1-process run. For each variant, one 2-rank run of the tiny Llama must:
  * lower the loss;
  * reproduce the 1-rank run step by step: tolerance 1e-5 relative, fp32 everywhere (measured differences are
    ~1e-7: only the order of the gradient sums differs);
  * resume from its step-4 checkpoint in a fresh process and end where the uninterrupted run ended;
  * consolidate offline (the strategy registry, `read_checkpoint_state`) into a model whose logits equal the
    trained model's: its validation loss equals the one the sharded model logged at the last step, and its
    weights equal `final/` (which the trainer gathered in-process).
DeepSpeed builds no op here: ftdist skips its shared-memory comm op on CPU (only inference uses it), and with
offload on a CPU-only machine the optimizer is torch AdamW, not DeepSpeedCPUAdam.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from ftdist.config import load_config
from ftdist.data import build_data
from ftdist.distributed.env import DistEnv
from ftdist.run_folder import load_trained
from ftdist.strategies import read_checkpoint_state
from ftdist.training.loss import count_label_tokens, token_loss_sum
from tiny_llama_runs import GLOBAL_BATCH, STEPS, assert_same_curve, assert_same_weights, command, curve, run

pytestmark = pytest.mark.distributed

STRATEGIES = {
    "fsdp_checkpointed": ["strategy=fsdp", "strategy.activation_checkpointing=true"],
    "zero3_offload": ["strategy.name=deepspeed", "strategy.zero_stage=3", "strategy.offload_optimizer=cpu"],
}
MID_RUN = 4


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_two_ranks_match_one_resume_and_export(strategy, tiny_llama_one_rank, tmp_path):
    run_dir = tmp_path / "run"
    run(command(run_dir, *STRATEGIES[strategy]))
    points = curve(run_dir)
    assert points[STEPS]["loss"] < points[1]["loss"] - 0.3, points  # it learns
    assert_same_curve(points, curve(tiny_llama_one_rank))

    # Resume from the step-4 checkpoint in a new process: the later steps and the final weights are the same.
    final = load_file(run_dir / "final" / "model.safetensors")
    resumed = tmp_path / "resumed"
    run(command(resumed, f"checkpoint.resume={run_dir / 'checkpoints' / f'step-{MID_RUN}'}", *STRATEGIES[strategy]))
    resumed_points = curve(resumed)
    assert sorted(resumed_points) == list(range(MID_RUN + 1, STEPS + 1))
    for step in resumed_points:
        assert resumed_points[step] == pytest.approx(points[step], rel=1e-6, abs=0)
    assert_same_weights(load_file(resumed / "final" / "model.safetensors"), final)

    # Offline export of the sharded checkpoint: the same weights as `final/`, and the same logits as the
    # trained (sharded) model, seen through the validation loss it logged at the last step.
    checkpoint = run_dir / "checkpoints" / f"step-{STEPS}"
    assert_same_weights(read_checkpoint_state(checkpoint), final)
    model = load_trained(checkpoint)[0]
    assert _val_loss(model, run_dir) == pytest.approx(points[STEPS]["val_loss"], rel=1e-5)


@torch.no_grad()
def _val_loss(model: torch.nn.Module, run_dir) -> float:
    """The validation loss the trainer computes at the last step, recomputed on one process with the exported
    model (the eval batches are a function of the seed, the step and the global batch, not of the rank)."""
    config = load_config(run_dir / "config.yaml", [f"train.micro_batch_size={GLOBAL_BATCH}"])
    _, data = build_data(config, DistEnv())
    losses = [
        token_loss_sum(model, batch, torch.device("cpu")) / count_label_tokens(batch)
        for batch in data.eval_batches("val", config.train.eval_batches, STEPS)
    ]
    return float(torch.stack(losses).mean())
