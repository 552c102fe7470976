"""Shared fixtures: tiny run configs that train in seconds on a CPU, and a CLI runner."""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"

# Ray 2.60 writes ~/.ray/auth_token when `ray.init()` starts a private cluster (`--address local`), and every
# later cluster then refuses clients without that token (InvalidAuthToken). The tests' clusters are their own,
# on the loopback: no token. Set before ray is imported (its config reads it once); subprocesses inherit it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
# Ray starts its worker processes at nice 15. In CI the Ray tests share 2 cores with the other xdist worker's
# torchrun ranks at nice 0, and a nice-15 Train worker then gets a few percent of a core: a worker group took
# minutes to start, and Ray Train retries a failed start without limit (the likely cause of a CI hang). The
# tests' clusters (started with this environment) run their workers at the priority of every other test process.
os.environ.setdefault("RAY_worker_niceness", "0")


# --- Two test processes (`pytest -n 2`: pytest-xdist, with `--dist loadgroup` from pyproject.toml) -------------
# CI has 2 cores, and much of a test's time goes to starting interpreters, waiting for Slurm or Ray, or one-thread
# steps of tiny models, so two workers overlap what one would wait for. The rules that keep them apart:
#  * `ray` tests run in one group on one worker, in file order: `ray stop --force` (test_ray_train's teardown)
#    stops every Ray process of the machine, a private `--address local` one included (test_launchers_agree);
#  * the other `slurm` tests run in a second group: they share the two-node Slurm, one job at a time per node;
#  * a module whose tests share a module- or session-scoped fixture of its own (a trained run) stays on one
#    worker, so that fixture is built once;
#  * the two cluster groups start first, one on each worker, then the other slow work, then the rest, so that
#    no worker is left with a long test at the end (`--no-loadscope-reorder` keeps this order).


def _group(item: pytest.Item) -> str | None:
    for marker in ("ray", "slurm"):
        if item.get_closest_marker(marker):
            return marker
    shared = (
        definition.scope in ("module", "session") and Path(inspect.getfile(definition.func)).is_relative_to(TESTS)
        for definitions in item._fixtureinfo.name2fixturedefs.values()  # pytest's record of the item's fixtures
        for definition in definitions
    )
    return item.module.__name__ if any(shared) else None


def _cost(item: pytest.Item, group: str | None) -> int:
    """0 for the cluster groups, 1 for other slow or multi-process tests, 2 for the rest: the order to start them."""
    if group in ("slurm", "ray"):
        return 0
    return 1 if item.get_closest_marker("slow") or item.get_closest_marker("distributed") else 2


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the xdist_group marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: file order, as ever
        return
    groups = {item: _group(item) for item in items}
    group_cost: dict[str, int] = {}
    for item, group in groups.items():
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            group_cost[group] = min(group_cost.get(group, 2), _cost(item, group))

    # Stable, and one key per group: a group's tests stay together, in file order.
    def start_order(item: pytest.Item) -> tuple[int, bool]:
        group = groups[item]
        return (group_cost[group] if group else _cost(item, None), group != "slurm")

    items.sort(key=start_order)


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
        # No plots: drawing them costs a second per run, and test_trainer.py checks them with plots=true.
        "tracking": {"progress": False, "plots": False},
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


def train_then_sigkill(args: list[str], run_dir: Path, past: str) -> None:
    """Start `ftdist train ARGS` (writing run_dir) and SIGKILL it once its latest checkpoint is newer than `past`;
    fail if it finished first."""
    process = subprocess.Popen(
        [sys.executable, "-m", "ftdist", "train", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    latest = run_dir / "checkpoints" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline and not (latest.exists() and latest.read_text().strip() not in ("", past)):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert not (run_dir / "final").exists(), "the run finished before it could be killed"


def kill_after_first_checkpoint(args: list[str], run_dir: Path) -> None:
    """Start `ftdist ARGS` (train, or launch with its ranks) and SIGKILL its whole process group as soon as its
    first checkpoint is published."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-m", "ftdist", *args]
    process = subprocess.Popen(argv, cwd=REPO, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
    latest, deadline = run_dir / "checkpoints" / "latest", time.time() + 300
    while time.time() < deadline and not latest.exists() and process.poll() is None:
        time.sleep(0.002)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert latest.exists(), "the run died before its first checkpoint"
    assert not (run_dir / "final").exists(), "the run finished before it could be killed"


@pytest.fixture(scope="session")
def tiny_llama_one_rank(tmp_path_factory) -> Path:
    """The tiny Llama trained on one process with the 2-rank runs' global batch (tests/tiny_llama_runs.py): the
    run every strategy's 2-rank run must reproduce, and the matrix's `full` x `single` pair."""
    from tiny_llama_runs import command, run

    run_dir = tmp_path_factory.mktemp("one-rank") / "run"
    run(command(run_dir, nproc=1))
    return run_dir
