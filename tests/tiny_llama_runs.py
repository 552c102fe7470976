"""The tiny Llama runs that the strategy tests share (tests/distributed/test_method_strategy_matrix.py,
tests/distributed/test_strategies_distributed.py): one command line for 1 and 2 processes, the curve a run logged, and
the comparisons. Every run has the same global batch, GLOBAL_BATCH sequences per micro-step x 2 micro-steps:
2 ranks take MICRO each, 1 rank takes them all, so a 2-rank run of any strategy must reproduce the 1-rank run
(the stream sampler draws the global batch from one generator and each rank takes its slice)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from conftest import REPO, run_cli
from ftdist.training.tracking import read_metrics

CONFIG = str(REPO / "cluster_configs" / "tiny_llama_full.yaml")
STEPS, EVERY, MICRO = 8, 2, 4
GLOBAL_BATCH = 2 * MICRO
COMMON = [
    f"train.max_steps={STEPS}",
    "train.grad_accum=2",
    f"checkpoint.every={EVERY}",
    "checkpoint.keep_last=10",
    f"train.eval_every={EVERY}",
    "train.eval_batches=2",
    "train.log_every=1",
    "schedule.warmup_steps=2",
    "tracking.progress=false",
    "tracking.plots=false",  # a second per run; the plots have their own tests
]
RELATIVE_TOLERANCE = 1e-5  # fp32 everywhere; only the order of the gradient sums differs (measured ~1e-7)


def command(run_dir: Path, *overrides: str, nproc: int = 2) -> list[str]:
    """`ftdist train` (1 process) or `ftdist launch local --nproc N`, with the global batch split over N."""
    launcher = ["train"] if nproc == 1 else ["launch", "local", "--nproc", str(nproc)]
    batch = [f"train.micro_batch_size={GLOBAL_BATCH // nproc}"]
    return [*launcher, CONFIG, *COMMON, *batch, f"output_dir={run_dir}", *overrides]


def run(args: list[str]) -> None:
    result = run_cli(*args, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]


def curve(run_dir: Path) -> dict[int, dict[str, float]]:
    """step -> {loss, val_loss} (training and evaluation are separate events of the same step)."""
    points: dict[int, dict[str, float]] = {}
    for event in read_metrics(run_dir):
        points.setdefault(event["step"], {}).update({k: event[k] for k in ("loss", "val_loss") if k in event})
    return points


def assert_same_curve(actual: dict, expected: dict) -> None:
    assert actual.keys() == expected.keys()
    for step, values in expected.items():
        for key, value in values.items():
            assert math.isclose(actual[step][key], value, rel_tol=RELATIVE_TOLERANCE), (step, key, actual, expected)


def assert_same_weights(actual: dict, expected: dict, atol: float = 1e-6) -> None:
    assert actual.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name].float(), tensor.float(), rtol=0, atol=atol, msg=name)
