"""The model arrives once per job: on 2 gloo ranks, only rank 0 reads the weights file and the other rank never
holds a full copy (FSDP2: a meta skeleton filled by `set_model_state_dict(broadcast_from_rank0=True)`;
ZeRO-3: `from_pretrained` under `zero.Init`; DDP and ZeRO-2: a skeleton filled by the wrapper's own
broadcast), and the model that results equals what one process builds (the same weights, adapters included;
the same rotary buffers; tied embeddings still one parameter). The base is the tiny Llama's saved scratch base
with tied embeddings, under LoRA; with `precision: bf16` the frozen base is bf16 and the adapters fp32. No
training step: tests/tiny_llama_runs.py's runs train these strategies end to end. Each rank is
tests/model_load_probe.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, TESTS
from tiny_llama_runs import CONFIG

pytestmark = pytest.mark.distributed

CASES = {
    "fsdp-bf16": ["strategy=fsdp", "precision=bf16"],
    "zero3": ["strategy=deepspeed", "strategy.zero_stage=3"],
    "ddp-bf16": ["strategy=ddp", "precision=bf16"],
    "zero2": ["strategy=deepspeed", "strategy.zero_stage=2"],
}
REPLICATED = ("ddp-bf16", "zero2")  # every rank holds the whole model


def _probe(out: Path, *overrides: str) -> list[dict]:
    args = [f"output_dir={out / 'run'}", "method=lora", "model.scratch.tie_embeddings=true", "tracking.progress=false"]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(TESTS / "model_load_probe.py"), str(out), CONFIG, *args, *overrides]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return [torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)]


@pytest.mark.parametrize("case", list(CASES))
def test_only_rank0_reads_and_the_model_equals_one_process(case, tmp_path):
    rank0, rank1 = _probe(tmp_path, *CASES[case])
    weights = str(tmp_path / "run" / "base" / "model.safetensors")
    assert rank0["read"] == [weights] and rank1["read"] == [], (rank0["read"], rank1["read"])
    assert rank1["empty"], "rank 1 held a full copy of the model"
    assert rank0["tied"] and rank1["tied"], "lm_head and the embeddings were untied"
    for name, buffer in rank0["buffers"].items():
        assert torch.equal(rank1["buffers"][name], buffer), name
    if case in REPLICATED:  # rank 1's skeleton received every parameter
        for name, parameter in rank0["parameters"].items():
            assert torch.equal(rank1["parameters"][name], parameter), name
    full, reference = rank0["full"], rank0["reference"]
    assert full.keys() <= reference.keys() and any("lora_A" in key for key in full)
    for name, tensor in full.items():
        assert torch.equal(tensor.to(reference[name].dtype), reference[name]), name
    if "bf16" in case:  # the frozen base in the compute dtype, fp32 masters for what trains
        for record in (rank0, rank1):
            assert record["dtypes"] == {"trainable": ["torch.float32"], "frozen": ["torch.bfloat16"]}
