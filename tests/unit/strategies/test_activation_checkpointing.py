"""`strategy.activation_checkpointing` really recomputes each decoder layer in backward, under every strategy.

Counted by calls to the first layer's MLP `forward` in one training step: 1 without checkpointing, 2 with
(a forward hook would not do: hooks do not fire during the recompute). Runs in this process on a 1-rank
gloo group, which FSDP2 and DDP accept; the 2-rank numerics are in test_strategies_distributed.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from conftest import REPO
from ftdist.config import load_config
from ftdist.data import build_data
from ftdist.distributed.device import Precision
from ftdist.distributed.env import DistEnv
from ftdist.models import build_model
from ftdist.strategies import build_strategy
from ftdist.training.loss import token_loss_sum
from ftdist.training.optim import build_optimizer


@pytest.fixture
def process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("strategy", ["single", "ddp", "fsdp"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_layers_are_recomputed_in_backward(strategy, checkpointing, process_group):
    config = load_config(
        REPO / "cluster_configs" / "tiny_llama_full.yaml",
        [f"strategy.name={strategy}", f"strategy.activation_checkpointing={checkpointing}"],
    )
    tokenizer, data = build_data(config, DistEnv())
    model = build_model(config, tokenizer)
    mlp = model.model.layers[0].mlp
    calls = []
    original = mlp.forward
    mlp.forward = lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs)

    env = DistEnv(world_size=1)
    device = torch.device("cpu")
    strategy_object = build_strategy(config, env, device, Precision("fp32", None, False))
    wrapped, optimizer = strategy_object.prepare(model, lambda m: build_optimizer(m, config.optim, device))
    wrapped.train()
    strategy_object.backward(token_loss_sum(wrapped, data.next_batch(), device), wrapped)
    strategy_object.step(wrapped, optimizer)
    assert len(calls) == (2 if checkpointing else 1)
