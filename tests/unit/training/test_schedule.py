"""Learning-rate schedules and weight-decay groups."""

from __future__ import annotations

import pytest
import torch

from ftdist.config.optim import ScheduleConfig
from ftdist.training.optim import lr_multiplier, parameter_groups


def test_constant():
    factor = lr_multiplier(ScheduleConfig(name="constant"), 100)
    assert [factor(s) for s in (0, 50, 99)] == [1.0, 1.0, 1.0]


def test_linear_warmup_then_decay_to_floor():
    factor = lr_multiplier(ScheduleConfig(name="linear", warmup_steps=10, min_lr_ratio=0.1), 110)
    assert factor(0) == pytest.approx(0.1)
    assert factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert factor(110) == pytest.approx(0.1)


def test_cosine_halfway_is_midpoint():
    factor = lr_multiplier(ScheduleConfig(name="cosine", warmup_steps=0, min_lr_ratio=0.0), 100)
    assert factor(0) == pytest.approx(1.0)
    assert factor(50) == pytest.approx(0.5)
    assert factor(100) == pytest.approx(0.0, abs=1e-12)


def test_weight_decay_skips_biases_and_norms():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.LayerNorm(4))
    decay, no_decay = parameter_groups(model, 0.1)
    assert [p.shape for p in decay["params"]] == [torch.Size([4, 4])]
    assert len(no_decay["params"]) == 3 and no_decay["weight_decay"] == 0.0
