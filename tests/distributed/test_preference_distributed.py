"""DPO and KTO on 2 CPU processes (gloo) under each strategy family, held step by step to the 1-process run of
the same global batch (16 rows per step: 8 per rank, or 16 on one), fp32, tolerance 1e-5 relative:
  * full fine-tuning with the precomputed reference (FSDP2, ZeRO-3): the ranks score their shares of the rows
    with the sharded starting model, in collective lock-step, and gather one table;
  * LoRA with the adapters-disabled reference (DDP, FSDP2, ZeRO-2);
  * KTO's KL estimate, averaged over the ranks each micro-step (DDP).
Then a SIGKILL after a checkpoint of a 2-rank FSDP2 DPO run, and its resume, ends on the uninterrupted run's
weights: the reference scores written before the first step survive, and the starting model is not needed.
"""

from __future__ import annotations

import math

import pytest
import torch
import yaml
from preference_helpers import preference_config, write_pairs, write_unpaired
from safetensors.torch import load_file

from conftest import kill_after_first_checkpoint, run_cli
from ftdist.training.tracking import read_metrics

pytestmark = pytest.mark.distributed

GLOBAL = 16
LORA = {"name": "dpo", "finetuning": "lora", "lora": {"dropout": 0.0}}  # dropout draws differ per rank count
CASES = {
    "dpo-full-fsdp": ({"name": "dpo"}, ["strategy=fsdp"]),
    "dpo-full-zero3": ({"name": "dpo"}, ["strategy.name=deepspeed", "strategy.zero_stage=3"]),
    "dpo-lora-ddp": (LORA, ["strategy=ddp"]),
    "dpo-lora-fsdp": (LORA, ["strategy=fsdp"]),
    "dpo-lora-zero2": (LORA, ["strategy.name=deepspeed", "strategy.zero_stage=2"]),
    "kto-full-ddp": ({"name": "kto"}, ["strategy=ddp"]),
}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preference-distributed")
    write_pairs(folder / "pairs.jsonl")
    write_unpaired(folder / "unpaired.jsonl")
    return folder


def config_file(workdir, name: str, method: dict) -> str:
    data = workdir / ("unpaired.jsonl" if method["name"] == "kto" else "pairs.jsonl")
    config = preference_config(workdir / name, data, method, max_steps=8, eval_every=4)
    config["checkpoint"] = {"every": 4, "keep_last": 3}
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def train(workdir, name: str, method: dict, overrides: list[str], nproc: int) -> list[float]:
    launcher = ["train"] if nproc == 1 else ["launch", "local", "--nproc", str(nproc)]
    run_dir = workdir / name
    args = [*launcher, config_file(workdir, name, method), f"output_dir={run_dir}"]
    result = run_cli(*args, *overrides, f"train.micro_batch_size={GLOBAL // nproc}", timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return [event["loss"] for event in read_metrics(run_dir) if "loss" in event]


@pytest.fixture(scope="module")
def one_rank(workdir):
    """The 1-process curve of each method configuration (the strategy does not change it)."""
    curves = {}
    for key in ("dpo-full", "dpo-lora", "kto-full"):
        method = next(method for case, (method, _) in CASES.items() if case.startswith(key))
        curves[key] = train(workdir, f"one-{key}", method, [], nproc=1)
    return curves


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_match_one(case, workdir, one_rank):
    method, overrides = CASES[case]
    curve = train(workdir, case, method, overrides, nproc=2)
    expected = one_rank[case.rsplit("-", 1)[0]]
    assert len(curve) == len(expected) == 8
    start = 0.5 if method["name"] == "kto" else math.log(2)
    assert curve[0] == pytest.approx(start, abs=1e-6) and curve[-1] < curve[0]
    for step, (got, want) in enumerate(zip(curve, expected, strict=True), 1):
        assert math.isclose(got, want, rel_tol=1e-5), (step, curve, expected)


def test_fsdp_dpo_killed_after_a_checkpoint_resumes_to_the_same_weights(workdir):
    whole = workdir / "dpo-full-fsdp"  # the uninterrupted 2-rank run of test_two_ranks_match_one
    if not (whole / "final").exists():
        train(workdir, "dpo-full-fsdp", *CASES["dpo-full-fsdp"], nproc=2)
    killed = workdir / "killed"
    args = ["launch", "local", "--nproc", "2", config_file(workdir, "killed", {"name": "dpo"}), f"output_dir={killed}"]
    args += ["strategy=fsdp", f"train.micro_batch_size={GLOBAL // 2}"]
    kill_after_first_checkpoint(args, killed)
    train(workdir, "killed", {"name": "dpo"}, ["strategy=fsdp"], nproc=2)  # resumes from its latest checkpoint
    for name, tensor in load_file(whole / "final" / "model.safetensors").items():
        torch.testing.assert_close(load_file(killed / "final" / "model.safetensors")[name], tensor, rtol=0, atol=0)
