"""Strategy settings that cannot work are rejected when the config loads, before any process group starts;
the generated DeepSpeed config follows the run config; the stream sampler does not depend on world size."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli
from ftdist.config import load_config
from ftdist.data.stream import TokenStreamData
from ftdist.distributed.device import pick_precision
from ftdist.errors import ConfigError, FtdistError
from ftdist.preflight import World, preflight
from ftdist.strategies import REGISTRY, checkpoint_owner, deepspeed_config

TINY = REPO / "cluster_configs" / "tiny_llama_full.yaml"
DEEPSPEED = ["strategy.name=deepspeed"]


def test_offload_param_needs_zero3():
    with pytest.raises(ConfigError, match=r"offload_param=cpu needs strategy.zero_stage=3.*zero_stage=2"):
        load_config(TINY, [*DEEPSPEED, "strategy.zero_stage=2", "strategy.offload_param=cpu"])
    load_config(TINY, [*DEEPSPEED, "strategy.zero_stage=3", "strategy.offload_param=cpu"])  # fine


def test_settings_of_another_strategy_are_errors():
    with pytest.raises(ConfigError, match="strategy.zero_stage is a deepspeed setting but strategy.name=fsdp"):
        load_config(TINY, ["strategy.name=fsdp", "strategy.zero_stage=3"])
    with pytest.raises(ConfigError, match="reshard_after_forward is a fsdp setting"):
        load_config(TINY, [*DEEPSPEED, "strategy.reshard_after_forward=false"])
    with pytest.raises(ConfigError, match="nvme_path"):
        load_config(TINY, [*DEEPSPEED, "strategy.offload_optimizer=nvme"])


def test_deepspeed_json_that_contradicts_the_run_is_rejected_by_preflight(tmp_path, monkeypatch):
    user = tmp_path / "ds.json"
    user.write_text(json.dumps({"train_micro_batch_size_per_gpu": 4, "gradient_clipping": 1.0}))
    config = load_config(TINY, [*DEEPSPEED, f"strategy.deepspeed_config={user}", "train.grad_clip=0"])
    with pytest.raises(ConfigError) as error:
        preflight(config, World(2))
    message = str(error.value)
    assert "train_micro_batch_size_per_gpu is 4 but train.micro_batch_size gives 8" in message
    assert "gradient_clipping is 1.0 but train.grad_clip gives 0.0" in message

    # train_batch_size needs the world size, which is a fact of the launch, never of the environment.
    user.write_text(json.dumps({"train_batch_size": 16}))
    config = load_config(TINY, [*DEEPSPEED, f"strategy.deepspeed_config={user}"])
    preflight(config, World(2))
    monkeypatch.setenv("WORLD_SIZE", "4")  # ignored: the world is explicit
    preflight(config, World(2))
    with pytest.raises(ConfigError, match="as 4 processes on cpu: .*train_batch_size is 16 but .* gives 32"):
        preflight(config, World(4))
    missing = load_config(TINY, [*DEEPSPEED, f"strategy.deepspeed_config={tmp_path / 'missing.json'}"])
    with pytest.raises(ConfigError, match="does not exist"):
        preflight(missing, World(2))


def test_deepspeed_json_auto_values_are_filled_and_extra_keys_kept():
    user = json.loads((REPO / "cluster_configs" / "deepspeed" / "zero3_offload.json").read_text())
    generated = deepspeed_config.generate(
        micro_batch_size=2, grad_accum=8, world_size=8, grad_clip=0.0, precision="bf16", zero_stage=3,
        offload_optimizer="cpu",
    )  # fmt: skip
    merged = deepspeed_config.merge(user, generated, "zero3_offload.json")
    assert merged["train_batch_size"] == 128 and merged["gradient_accumulation_steps"] == 8
    assert merged["gradient_clipping"] == 0.0  # written explicitly: DeepSpeed's own default would clip at 1.0
    assert merged["bf16"]["enabled"] is True and merged["fp16"]["enabled"] is False
    assert merged["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert merged["zero_optimization"]["stage3_prefetch_bucket_size"] == 50_000_000  # the user's tuning stays


def test_four_bit_base_cannot_be_sharded():
    for strategy in (["strategy=deepspeed", "strategy.zero_stage=3"], ["strategy=fsdp"], ["strategy=deepspeed"]):
        with pytest.raises(ConfigError, match="use strategy: single or ddp with QLoRA, or method: lora"):
            load_config(TINY, ["method=qlora", *strategy])
    for name in ("single", "ddp"):
        load_config(TINY, ["method=qlora", f"strategy={name}"])


def test_the_schema_reads_no_environment(monkeypatch):
    """The same file validates the same way whatever the process environment says."""
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    config = load_config(TINY)  # strategy: single, yet 8 "processes" in the environment: not the schema's business
    assert config.strategy.name == "single"
    with pytest.raises(ConfigError, match="strategy: single runs one process, but this job has 8"):
        preflight(config, World(8))


def test_qlora_needs_of_the_device_are_checked_once_in_preflight():
    config = load_config(TINY, ["method=qlora"])
    with pytest.raises(ConfigError, match="qlora needs bitsandbytes, which has no MPS backend"):
        preflight(config, World(1, "mps"))
    preflight(config, World(1, "cpu"))


def test_a_key_of_another_strategy_names_its_owner():
    with pytest.raises(
        ConfigError, match="strategy.offload_param is a fsdp or deepspeed setting but strategy.name=ddp"
    ):
        load_config(TINY, ["strategy=ddp", "strategy.offload_param=cpu"])
    with pytest.raises(
        ConfigError, match="strategy.name must be one of single, ddp, fsdp, deepspeed, auto .got 'fdsp'"
    ):
        load_config(TINY, ["strategy=fdsp"])


def test_fp16_on_cpu_is_rejected_before_the_process_group():
    with pytest.raises(FtdistError, match="precision: fp16 needs a CUDA GPU"):
        pick_precision("fp16", torch.device("cpu"))  # the trainer calls this before init_distributed


def test_every_strategy_is_registered():
    assert {"single", "ddp", "fsdp", "deepspeed"} <= set(REGISTRY)


@pytest.mark.parametrize("path", sorted((REPO / "cluster_configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path, monkeypatch):
    monkeypatch.chdir(REPO)  # deepspeed_config paths are relative to the repository root
    config = load_config(path)
    if config.model.path and config.model.path.startswith("meta-llama/"):
        assert "Hardware:" in path.read_text(), f"{path.name} must say what hardware it expects"


def test_stream_batches_do_not_depend_on_world_size():
    tokens = torch.arange(5000)
    one = TokenStreamData(tokens, seq_len=8, batch_size=6, val_fraction=0.1, seed=3)
    ranks = [TokenStreamData(tokens, 8, 3, 0.1, 3, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(3):
        together = [rank.next_batch()["input_ids"] for rank in ranks]
        assert torch.equal(one.next_batch()["input_ids"], torch.cat(together))
    state = ranks[0].state_dict()
    expected = ranks[0].next_batch()["input_ids"]
    ranks[0].load_state_dict(state)
    assert torch.equal(ranks[0].next_batch()["input_ids"], expected)


def test_launch_local_validates_first_and_wraps_torchrun(tmp_path):
    # The launcher's preflight loads the strategy and method classes, but not the model stack (transformers'
    # modeling code, peft, DeepSpeed): seconds before torchrun starts, on every launch.
    heavy = ("transformers.modeling_utils", "peft", "deepspeed")
    code = (
        f"import sys; from ftdist.cli import main; main(['launch', 'local', '--nproc', '2', '--dry-run', {str(TINY)!r},"
        f" 'strategy=deepspeed', 'method=lora']); print([m for m in {heavy!r} if m in sys.modules])"
    )
    dry = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert "torch.distributed.run --nproc_per_node=2" in dry.stdout and "ftdist train" in dry.stdout
    assert dry.stdout.splitlines()[-1] == "[]", dry.stdout
    single = run_cli("launch", "local", "--nproc", "2", str(TINY))
    assert single.returncode == 2 and "strategy=ddp" in single.stderr
    bad = run_cli("launch", "local", "--nproc", "2", str(TINY), *DEEPSPEED, "strategy.offload_param=cpu")
    assert bad.returncode == 2 and "zero_stage" in bad.stderr


def test_the_registry_names_the_formats_it_reads(tmp_path):
    with pytest.raises(FtdistError, match="single or ddp: model.safetensors; fsdp: dcp/; deepspeed: deepspeed/"):
        checkpoint_owner(tmp_path)
