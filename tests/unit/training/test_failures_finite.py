"""Finite or not published: a run that turns NaN between logging steps stops before sealing a checkpoint, and
`latest` keeps naming the last finite one. The NaN comes from a real mechanism: a poisoned optimizer state on
disk (the Adam moments of a good checkpoint set to NaN), which makes the first update after the resume NaN."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

import ftdist
from conftest import run_cli, tiny_gpt_config
from ftdist.checkpoint.folders import MANIFEST
from ftdist.errors import FtdistError

FIRST = ["train.max_steps=12", "checkpoint.every=3", "checkpoint.keep_last=20", "train.log_every=10"]


def poison_optimizer(checkpoint) -> None:
    """Set every Adam moment in the checkpoint's optimizer state to NaN and re-seal its manifest."""
    path = checkpoint / "optimizer.pt"
    state = torch.load(path, weights_only=True)
    for moments in state["state"].values():
        moments["exp_avg"].fill_(float("nan"))
    torch.save(state, path)
    manifest = json.loads((checkpoint / MANIFEST).read_text())
    manifest["files"]["optimizer.pt"] = path.stat().st_size
    (checkpoint / MANIFEST).write_text(json.dumps(manifest))


def latest(run_dir) -> str:
    return (run_dir / "checkpoints" / "latest").read_text().strip()


def test_nan_between_logging_steps_publishes_nothing(tmp_path):
    run_dir = tmp_path / "run"
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_gpt_config(run_dir)))
    ftdist.train(str(config_path), FIRST)
    poison_optimizer(run_dir / "checkpoints" / "step-12")

    # Resumed at 12: step 13's update is NaN, the loss is NaN from step 14, the next log would be step 20.
    result = run_cli("train", str(config_path), "train.max_steps=30", *FIRST[1:])
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert "training became non-finite (the loss was first not finite at step 14); it stopped at step 15" in error
    assert f"last finite checkpoint is {run_dir / 'checkpoints' / 'step-12'}" in error
    assert "lower optim.lr" in error
    assert latest(run_dir) == "step-12"
    published = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert published == ["latest", "step-12", "step-3", "step-6", "step-9"]  # no step-15, no partial folder


def test_nan_weights_behind_a_finite_loss_are_caught_before_the_save(tmp_path):
    """With a checkpoint every step, the step whose update went NaN still had a finite loss: the weights
    themselves are checked before the folder is written."""
    run_dir = tmp_path / "run"
    config = tiny_gpt_config(run_dir)
    ftdist.train(config, FIRST)
    poison_optimizer(run_dir / "checkpoints" / "step-12")
    with pytest.raises(FtdistError, match=r"weights were not finite after the update at step 13") as caught:
        ftdist.train(config, ["train.max_steps=30", "checkpoint.every=1", "train.log_every=10"])
    assert "step-12" in str(caught.value)
    assert latest(run_dir) == "step-12"
    assert not (run_dir / "checkpoints" / "step-13").exists()


def test_watch_keeps_the_first_bad_step():
    from ftdist.training.finite import FiniteWatch

    watch = FiniteWatch(torch.device("cpu"))
    for step, loss in enumerate([1.0, 2.0, float("nan"), 3.0, float("inf")], 1):
        watch.observe(torch.tensor(loss), step)
    assert watch.first_bad_step(lambda t: t) == 3
    assert FiniteWatch(torch.device("cpu")).first_bad_step(lambda t: t) is None


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), None])
def test_weight_check_finds_any_non_finite_weight_and_not_an_overflowing_sum(bad):
    from ftdist.training.finite import weights_finite

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)).half()
    with torch.no_grad():
        model[1].weight.fill_(60000.0)  # finite, but its fp16 sum overflows to inf
        if bad is not None:
            model[0].bias[2] = bad
    assert float(weights_finite(model)) == (0.0 if bad is None else 1.0)
