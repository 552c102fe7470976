"""The planner's host figures describe what ftdist does since issue 22: one model load per job (rank 0 reads, or
zero.Init), LoRA's frozen base in the compute dtype, ZeRO-1/2 optimizer offload as DeepSpeed allocates it, and
a `host` column that shows the figure the fit check compares with the node's RAM."""

from __future__ import annotations

import json

import pytest

from conftest import REPO
from ftdist.cli import main
from ftdist.planner.analytic import estimate
from ftdist.planner.candidates import Candidate
from ftdist.planner.catalogue import catalogue_shape
from ftdist.planner.hardware import PRESETS, GiB, Hardware
from ftdist.planner.workload import Workload

CONFIGS = str(REPO / "cluster_configs")
LLAMA7 = "meta-llama/Llama-2-7b-hf"


def _rows(capsys, *args: str) -> tuple[int, dict[str, dict]]:
    code = main(["plan", *args, "--json"])
    body = json.loads(capsys.readouterr().out)
    return code, {row["strategy"]: row for row in body["strategies"]}


def test_zero2_offload_on_four_nodes_is_not_refused_for_host_memory(capsys) -> None:
    """Llama-2-7B on 4 x 8 GPUs, 512 GiB hosts: DeepSpeed's estimator (P x max(4 x 32, 16) x 1.5) said 1,205 GiB
    per node; the allocation is 18 B per parameter over 32 ranks, times 8 per node (about 30 GiB), and the load
    before it is one fp32 copy (25 GiB: rank 0 reads, the engine broadcasts), so the allocation is the need."""
    args = [f"{CONFIGS}/llama2_7b_full_zero3.yaml", "--gpus", "8", "--nodes", "4", "--gpu", "a100-80"]
    _, rows = _rows(capsys, *args, "--cpu-mem", "512GiB", "strategy.zero_stage=2", "strategy.offload_optimizer=cpu")
    row = rows["zero2 offload opt +ckpt"]
    assert row["fits"] and "host" not in row["why_not"]
    assert 25 * GiB < row["host_bytes"]["offloaded_states"] < 40 * GiB
    assert 24 * GiB < row["host_bytes"]["model_load"] < 26 * GiB
    assert row["host_need_bytes"] == row["host_bytes"]["offloaded_states"]


def test_host_column_is_the_figure_the_fit_check_uses(capsys) -> None:
    """13B ZeRO-3 with optimizer offload on one 8-GPU node: the column printed the sum of load and offloaded
    states (678.8 GiB) and still said yes; it now prints the need, which fits 512 GiB."""
    args = [f"{CONFIGS}/llama2_13b_full_zero3_offload.yaml", "--gpus", "8", "--gpu", "a100-80"]
    _, rows = _rows(capsys, *args)
    row = rows["zero3 offload opt +ckpt"]
    assert row["fits"] and row["host_need_bytes"] < 512 * GiB
    assert row["host_need_bytes"] == max(row["host_bytes"].values())
    main(["plan", *args])
    line = next(text for text in capsys.readouterr().out.splitlines() if text.startswith("zero3 offload opt +ckpt"))
    assert f"{row['host_need_bytes'] / GiB:.1f}" in line.split()


@pytest.mark.parametrize(("strategy", "zero_stage"), [("single", 0), ("ddp", 0), ("fsdp", 0), ("deepspeed", 3)])
def test_one_load_per_job_in_the_compute_dtype_under_lora(strategy: str, zero_stage: int) -> None:
    """Rank 0 reads (zero.Init for ZeRO-3), whatever the rank count. A bf16 base from the 16-bit checkpoint is the
    memory-mapped file, whose read pages go back as the strategy copies them: about one layer on the host. An
    fp32 base (`precision: fp32`) converts while it loads: the whole converted copy, except under zero.Init,
    which converts module by module into the partitions."""
    shape = catalogue_shape(LLAMA7)
    hardware, world = Hardware(PRESETS["a100-80"], 8), 1 if strategy == "single" else 8
    candidate = Candidate(strategy, world, True, zero_stage=zero_stage)
    layer = max(shape.layer_params(), shape.largest_param())
    bf16 = Workload(shape, "lora", "adamw", "bf16", seq_len=512, micro_batch=1)
    est = estimate(bf16, candidate, hardware)
    assert shape.file_bytes == 2 and est.host["model_load"] == 2 * layer
    fp32 = estimate(Workload(shape, "lora", "adamw", "fp32", seq_len=512, micro_batch=1), candidate, hardware)
    assert fp32.host["model_load"] == (2 * layer if strategy == "deepspeed" else 4 * shape.total_params())
    if strategy == "fsdp":  # the frozen part, sharded
        assert est.device["weights"] == 2 * (shape.total_params() - bf16.trainable_params()) // world
    elif strategy != "deepspeed":
        assert est.device["weights"] == 2 * shape.total_params()


def test_the_checkpoint_dtype_in_config_json_decides_whether_the_load_converts() -> None:
    """An fp32 checkpoint (config.json `dtype: float32`) loads without conversion under fp32 (a layer at a time on
    the host) and is converted whole into a bf16 base under bf16; a 16-bit one the other way round."""
    from ftdist.planner.catalogue import CATALOGUE, shape_from_hf_config

    fp32_file = shape_from_hf_config({**CATALOGUE[LLAMA7], "dtype": "float32"}, LLAMA7, "test")
    bf16_file = shape_from_hf_config({**CATALOGUE[LLAMA7], "torch_dtype": "bfloat16"}, LLAMA7, "test")
    assert (fp32_file.file_bytes, bf16_file.file_bytes) == (4, 2)
    layer, total = max(fp32_file.layer_params(), fp32_file.largest_param()), fp32_file.total_params()
    candidate, hardware = Candidate("fsdp", 8, True), Hardware(PRESETS["a100-80"], 8)

    def load(shape, precision: str) -> int:
        workload = Workload(shape, "lora", "adamw", precision, seq_len=512, micro_batch=1)
        return estimate(workload, candidate, hardware).host["model_load"]

    assert load(fp32_file, "fp32") == 4 * layer and load(fp32_file, "bf16") == 2 * total
    assert load(bf16_file, "bf16") == 2 * layer and load(bf16_file, "fp32") == 4 * total


def test_lora_7b_fits_a_24gb_a10g_with_a_16bit_base(capsys) -> None:
    """25.1 GiB of fp32 base did not fit an A10G; in bf16 the base is 12.6 GiB and LoRA fits with checkpointing."""
    code, rows = _rows(capsys, f"{CONFIGS}/qlora_llama2_7b_sql.yaml", "method=lora", "--gpu", "a10g")
    assert code == 0 and rows["single +ckpt"]["fits"]
    assert rows["single +ckpt"]["device_bytes"]["weights"] / GiB == pytest.approx(12.55, abs=0.01)
