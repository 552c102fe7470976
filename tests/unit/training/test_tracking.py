"""Metric sinks: a configured tracker that is not installed fails before training, with the fix."""

from __future__ import annotations

import importlib.util

import pytest

import ftdist
from ftdist.errors import FtdistError


@pytest.mark.skipif(importlib.util.find_spec("wandb") is not None, reason="wandb is installed here")
def test_missing_wandb_fails_before_training(tiny_config, tmp_path):
    tiny_config["tracking"]["wandb"] = {"project": "p", "mode": "offline"}
    with pytest.raises(FtdistError, match="tracking.wandb is set but wandb is not installed; pip install wandb"):
        ftdist.train(tiny_config)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed here")
def test_missing_mlflow_fails_before_training(tiny_config):
    tiny_config["tracking"]["mlflow"] = {}
    with pytest.raises(FtdistError, match="pip install mlflow"):
        ftdist.train(tiny_config)


def test_tensorboard_can_be_turned_off(tiny_config, tmp_path):
    ftdist.train(tiny_config, ["tracking.tensorboard=false", "train.max_steps=5", "tracking.plots=false"])
    assert not (tmp_path / "run" / "tb").exists()
    assert not (tmp_path / "run" / "plots").exists()
    assert (tmp_path / "run" / "metrics.jsonl").exists()
