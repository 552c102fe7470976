"""Method x strategy pairs, end to end: train with checkpoints, SIGKILL every rank mid-run, resume, export,
merge, and load the result in plain transformers / peft.

Pairs: `full` x `single`, `ddp`, `fsdp`, `deepspeed` ZeRO-2 and ZeRO-3; `lora` x `single`, `fsdp`, ZeRO-3;
`qlora` x `single`, `ddp` (a 4-bit base cannot be sharded: the schema refuses qlora with fsdp/deepspeed): every
checkpoint format with full weights and with an adapter. Two gloo ranks on CPU (one for `single`), the tiny
Llama of cluster_configs/tiny_llama_full.yaml, 8 steps of 2 micro-steps with the same global batch on 1 and 2
ranks (tests/tiny_llama_runs.py), a checkpoint and an evaluation every 2 steps. For each pair:
  * with full weights on 2 ranks, the run reproduces the 1-rank run step by step (1e-5 relative), and its last
    checkpoint, read offline (the strategy registry's `read_checkpoint_state`), holds the weights of `final/`
    (which the trainer gathered in-process);
  * a run killed with SIGKILL (the launcher, torchrun and every rank at once) right after its first checkpoint,
    then restarted with the same command (`resume: auto`), logs the same losses and ends with the same weights
    as an uninterrupted run: bitwise (fp32 on CPU, the same reduction order on every restart);
  * `ftdist export` of a mid-run checkpoint (step 4) and of the run (its `final/`) loads in plain transformers
    (and peft on its base, for adapters) and gives the trained model's logits, seen through the validation loss
    the live, possibly sharded model logged at that step (recomputed here on one process);
  * for adapters, `ftdist merge` of the same checkpoint gives a plain model with the same validation loss.
QLoRA's tolerance is 2e-2 relative, not 1e-5: the trained model computed with the NF4 base de-quantized to
bf16, while the exported/merged model is the de-quantized base in fp32 (the same weights, another precision).
Resume across world sizes (a 2-rank checkpoint on 1 rank) is checked for one pair per checkpoint format.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import kill_after_first_checkpoint, run_cli
from ftdist.cli import main
from ftdist.config import load_config
from ftdist.data import build_data
from ftdist.distributed.env import DistEnv
from ftdist.strategies import read_checkpoint_state
from ftdist.training.loss import count_label_tokens, token_loss_sum
from tiny_llama_runs import GLOBAL_BATCH, STEPS, assert_same_curve, assert_same_weights, command, curve, run

pytestmark = [pytest.mark.distributed, pytest.mark.slow]

STRATEGIES = {
    "single": [],
    "ddp": ["strategy=ddp"],
    "fsdp": ["strategy=fsdp"],
    "zero2": ["strategy=deepspeed", "strategy.zero_stage=2"],
    "zero3": ["strategy=deepspeed", "strategy.zero_stage=3"],
}
# Every checkpoint format (single/ddp's full state dict, FSDP2's DCP shards, ZeRO-2 and ZeRO-3 partitions) with
# full weights, and with an adapter's state filter once each: plain (lora-single), DCP (lora-fsdp), ZeRO
# (lora-zero3, the stage that partitions the adapter itself); adapters under ddp are qlora-ddp's.
PAIRS = [("full", s) for s in STRATEGIES] + [("lora", s) for s in ("single", "fsdp", "zero3")]
PAIRS += [("qlora", "single"), ("qlora", "ddp")]
TOLERANCE = {"full": 1e-5, "lora": 1e-5, "qlora": 2e-2}
MID_RUN = 4


def _command(method: str, strategy: str, run_dir: Path, *extra: str, nproc: int | None = None) -> list[str]:
    nproc = nproc or (1 if strategy == "single" else 2)
    return command(run_dir, f"method={method}", *STRATEGIES[strategy], *extra, nproc=nproc)


def _final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    final = run_dir / "final"
    name = "adapter_model.safetensors" if (final / "adapter_config.json").exists() else "model.safetensors"
    return load_file(final / name)


def _assert_bitwise_equal(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name


@torch.no_grad()
def _val_loss(model: torch.nn.Module, run_dir: Path, step: int) -> float:
    """The validation loss the trainer logs at `step`, recomputed on one process: the eval batches depend on
    the seed, the step and the global batch, not on the rank."""
    config = load_config(run_dir / "config.yaml", [f"train.micro_batch_size={GLOBAL_BATCH}"])
    _, data = build_data(config, DistEnv())
    model = model.float().eval()
    losses = [
        token_loss_sum(model, batch, torch.device("cpu")) / count_label_tokens(batch)
        for batch in data.eval_batches("val", config.train.eval_batches, step)
    ]
    return float(torch.stack(losses).mean())


def _load_exported(folder: Path) -> torch.nn.Module:
    """An exported folder as a user loads it: plain transformers, plus peft for an adapter on its base."""
    from transformers import AutoModelForCausalLM

    adapter = folder / "adapter_config.json"
    if not adapter.exists():
        assert sorted(p.suffix for p in folder.glob("*.safetensors")) == [".safetensors"]
        return AutoModelForCausalLM.from_pretrained(folder)
    from peft import PeftModel

    base = json.loads(adapter.read_text())["base_model_name_or_path"]
    return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder)


@pytest.mark.parametrize(("method", "strategy"), PAIRS, ids=[f"{m}-{s}" for m, s in PAIRS])
def test_kill_resume_export_merge(method, strategy, tmp_path, request):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    if (method, strategy) == ("full", "single"):  # the session's 1-rank run (fetched here, not as an argument,
        reference = request.getfixturevalue("tiny_llama_one_rank")  # so that the pairs spread over workers)
    else:
        run(_command(method, strategy, reference))
    points = curve(reference)
    assert points[STEPS]["loss"] < points[1]["loss"], points  # it learns
    if method == "full" and strategy != "single":  # 2 ranks reproduce 1, and the last checkpoint is final/
        assert_same_curve(points, curve(request.getfixturevalue("tiny_llama_one_rank")))
        last_checkpoint = reference / "checkpoints" / f"step-{STEPS}"
        assert_same_weights(read_checkpoint_state(last_checkpoint), _final_weights(reference))

    kill_after_first_checkpoint(_command(method, strategy, killed), killed)
    run(_command(method, strategy, killed))  # the same command again: resume: auto
    assert curve(killed) == points, "the resumed run logged other losses than the uninterrupted one"
    _assert_bitwise_equal(_final_weights(killed), _final_weights(reference))

    tolerance = TOLERANCE[method]
    checkpoint = reference / "checkpoints" / f"step-{MID_RUN}"
    for source, step in ((checkpoint, MID_RUN), (reference, STEPS)):
        out = tmp_path / f"export-{step}"
        assert main(["export", str(source), "--out", str(out)]) == 0
        if method == "qlora":  # a plain fp32 base is not the 4-bit base it trained on: check through merge
            continue
        expected = points[step]["val_loss"]
        assert _val_loss(_load_exported(out), reference, step) == pytest.approx(expected, rel=tolerance)
    if method != "full":
        merged = tmp_path / "merged"
        assert main(["merge", str(checkpoint), "--out", str(merged)]) == 0
        assert not (merged / "adapter_config.json").exists()
        loss = _val_loss(_load_exported(merged), reference, MID_RUN)
        assert loss == pytest.approx(points[MID_RUN]["val_loss"], rel=tolerance)

    if method == "full" and strategy in ("ddp", "fsdp", "zero3"):
        _resume_on_one_rank(strategy, reference, tmp_path / "one-rank", points)


def _resume_on_one_rank(strategy: str, reference: Path, run_dir: Path, points: dict) -> None:
    """A 2-rank checkpoint on 1 rank with the same global batch: it continues where the 2 ranks did, or, for a
    format that is per rank (DeepSpeed's ZeRO partitions), it is refused before loading, naming the world size."""
    resume = f"checkpoint.resume={reference / 'checkpoints' / f'step-{MID_RUN}'}"
    args = _command("full", strategy, run_dir, resume, nproc=1)
    if strategy == "zero3":
        result = run_cli(*args, timeout=600)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
        assert "written by 2 ranks" in result.stderr and "--nproc 2" in result.stderr
        return
    run(args)
    resumed = curve(run_dir)
    assert sorted(resumed) == list(range(MID_RUN + 1, STEPS + 1))
    for step, values in resumed.items():  # another reduction order: equal to float rounding, not bitwise
        assert values == pytest.approx(points[step], rel=1e-5), step
    final, expected = _final_weights(run_dir), _final_weights(reference)
    for name, tensor in expected.items():
        torch.testing.assert_close(final[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
