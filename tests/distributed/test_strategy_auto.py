"""`strategy: auto`: the planner picks a concrete strategy for the job's world and hardware when the run starts,
the run logs the choice and why, and the method never changes."""

from __future__ import annotations

import pytest

from conftest import REPO, run_cli
from ftdist.config import load_config
from ftdist.preflight import World, preflight, resolve_auto_strategy

TINY = REPO / "cluster_configs" / "tiny_llama_full.yaml"


def test_auto_resolves_to_a_strategy_that_passes_preflight_for_the_world():
    config = load_config(TINY, ["strategy=auto", "method=lora"])
    preflight(config, World(2))  # auto is not refused before the hardware is known
    for size in (1, 2):
        resolved, why = resolve_auto_strategy(config, World(size), "cpu")
        assert resolved.strategy.name != "auto" and resolved.method.name == "lora"
        assert why.startswith(f"strategy: auto chose {resolved.strategy.name}")
        preflight(resolved, World(size))  # what it picked can run in that world
        assert (resolved.strategy.name == "single") == (size == 1)


def test_a_concrete_strategy_is_left_alone():
    config = load_config(TINY, ["strategy=fsdp"])
    assert resolve_auto_strategy(config, World(2), "cpu") == (config, None)


@pytest.mark.distributed
def test_two_processes_train_with_the_planners_choice(tmp_path):
    result = run_cli(
        "launch", "local", "--nproc", "2", str(TINY), "strategy=auto", f"output_dir={tmp_path}",
        "train.max_steps=8", "train.eval_every=0", "checkpoint.every=0", "tracking.progress=false",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "strategy: auto chose" in result.stdout + result.stderr
    assert "strategy: auto" not in (tmp_path / "config.yaml").read_text()  # the run records what ran
