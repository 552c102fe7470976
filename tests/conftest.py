"""Shared fixtures: tiny run configs that train in seconds on a CPU, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Ray 2.60 writes ~/.ray/auth_token when `ray.init()` starts a private cluster (`--address local`), and every
# later cluster then refuses clients without that token (InvalidAuthToken). The tests' clusters are their own,
# on the loopback: no token. Set before ray is imported (its config reads it once); subprocesses inherit it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def tiny_gpt_config(run_dir: Path, **train) -> dict:
    """A 2-layer, 32-wide char-level GPT on the shipped SQL corpus: ~30 ms per step on CPU."""
    return {
        "name": "tiny-test",
        "output_dir": str(run_dir),
        "seed": 7,
        "method": "pretrain",
        "model": {"tokenizer": "char", "scratch": {"family": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 32}},
        "data": {"path": "builtin:tiny_sql_corpus.txt", "seq_len": 16},
        "optim": {"name": "adamw", "lr": 3e-3},
        "train": {"max_steps": 30, "micro_batch_size": 8, "eval_every": 10, "eval_batches": 4, "log_every": 5, **train},
        "checkpoint": {"every": 10, "keep_last": 2},
        "tracking": {"progress": False},
    }


@pytest.fixture
def tiny_config(tmp_path: Path) -> dict:
    return tiny_gpt_config(tmp_path / "run")


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ftdist ARGS` in a fresh interpreter, as a user would, and capture its output."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "ftdist", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )
