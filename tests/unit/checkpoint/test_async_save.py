"""Asynchronous checkpoints (`checkpoint.async_save`): the loop goes on while a background thread writes, and
until the write is sealed nothing points at it, so a crash at that moment resumes from the previous checkpoint;
a failed write is discarded and reported at the next agreement; and an async save writes the same files as a
synchronous one. The write is held open with an event on the strategy's real writer (the only thing changed),
so the in-flight state can be looked at; SIGKILL during real async saves is tests/unit/checkpoint/test_kill_resume.py.
"""

from __future__ import annotations

import errno
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_gpt_config
from ftdist.checkpoint.folders import resolve_resume, verify
from ftdist.errors import FtdistError
from ftdist.trainer import Trainer, train


def _started(run_dir: Path, **checkpoint) -> Trainer:
    config = tiny_gpt_config(run_dir, max_steps=4, eval_every=0)
    config["checkpoint"] = {"every": 2, "keep_last": 3, **checkpoint}
    trainer = Trainer(config)
    trainer.setup()
    return trainer


def _hold_writes(trainer: Trainer, before_write=lambda: None) -> threading.Event:
    gate, snapshot = threading.Event(), trainer.strategy.snapshot

    def held(model, optimizer, directory):
        copied = snapshot(model, optimizer, directory)

        def copied_then_held():
            write = copied()

            def gated() -> None:
                assert gate.wait(60)
                before_write()
                write()

            return gated

        return copied_then_held

    trainer.strategy.snapshot = held
    return gate


class _HeldStager:
    """The strategy's real DCP stager, whose copy starts only once `gate` is set."""

    def __init__(self, stager, gate: threading.Event) -> None:
        self.stager, self.gate = stager, gate

    def stage(self, state):
        result: Future = Future()

        def later() -> None:
            self.gate.wait(60)
            result.set_result(self.stager.stage(state).result())

        threading.Thread(target=later, daemon=True).start()
        return result


def test_nothing_names_an_async_save_until_it_is_sealed(tmp_path: Path) -> None:
    trainer = _started(tmp_path / "run", async_save=True)
    checkpoints = trainer.run.checkpoints
    try:
        first = trainer.checkpointer.save_now(2)
        gate = _hold_writes(trainer)
        second = trainer.checkpointer.save(4)  # returns while the write is held open
        assert (checkpoints / "latest").read_text().strip() == "step-2"
        assert not second.exists() and (checkpoints / ".tmp-step-4").is_dir()
        assert resolve_resume(checkpoints, "auto") == first  # what a crash right now would resume from
        gate.set()
        trainer.checkpointer.wait()
        assert (checkpoints / "latest").read_text().strip() == "step-4" and verify(second) is None
        assert not list(second.glob(".ftdist-*"))  # the ranks' marks are gone before the manifest
    finally:
        trainer.close()


def test_the_next_update_waits_for_the_host_copy(tmp_path: Path) -> None:
    """The copy to host memory runs while the next step's forward and backward do; the update after them
    waits for it, so the checkpoint holds the saved step's weights, not the next step's."""
    trainer = _started(tmp_path / "run", async_save=True)
    gate = threading.Event()
    try:
        trainer.train_step()
        saved = {name: tensor.clone() for name, tensor in trainer.model.state_dict().items()}
        stager = trainer.strategy.host_stager()
        trainer.strategy.host_stager = lambda: _HeldStager(stager, gate)
        folder = trainer.checkpointer.save(1)
        next_step = threading.Thread(target=trainer.train_step)
        next_step.start()
        next_step.join(timeout=2.0)
        assert next_step.is_alive()  # forward and backward are done; the update waits for the copy
        assert all(torch.equal(saved[name], tensor) for name, tensor in trainer.model.state_dict().items())
        gate.set()
        next_step.join(timeout=60)
        assert not next_step.is_alive()
        trainer.checkpointer.wait()
        written = load_file(str(folder / "model.safetensors"))
        assert all(torch.equal(saved[name], tensor) for name, tensor in written.items())
        assert not all(torch.equal(saved[name], tensor) for name, tensor in trainer.model.state_dict().items())
        assert trainer.checkpointer.stall_metrics()["checkpoint_copy_wait_s"] > 0
    finally:
        gate.set()
        trainer.close()


def test_a_failed_async_write_is_discarded_and_reported_at_the_next_wait(tmp_path: Path) -> None:
    trainer = _started(tmp_path / "run", async_save=True)
    checkpoints = trainer.run.checkpoints
    try:
        trainer.checkpointer.save_now(2)

        def disk_full() -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        _hold_writes(trainer, before_write=disk_full).set()
        trainer.checkpointer.save(4)
        with pytest.raises(FtdistError, match="step-2"):  # the paragraph names what survives
            trainer.checkpointer.wait()
        assert (checkpoints / "latest").read_text().strip() == "step-2"
        assert not (checkpoints / "step-4").exists() and not (checkpoints / ".tmp-step-4").exists()
    finally:
        trainer.close()


def test_async_and_sync_saves_write_the_same_checkpoint(tmp_path: Path) -> None:
    runs = {}
    for name, async_save in (("async", True), ("sync", False)):
        config = tiny_gpt_config(tmp_path / name, max_steps=4, eval_every=0)
        config["checkpoint"] = {"every": 2, "keep_last": 3, "async_save": async_save}
        runs[name] = train(config).run_dir / "checkpoints" / "step-2"
    assert (runs["async"] / "model.safetensors").read_bytes() == (runs["sync"] / "model.safetensors").read_bytes()
    for name in ("optimizer.pt", "trainer_state.rank0.pt"):
        a, b = (torch.load(run / name, weights_only=True) for run in (runs["async"], runs["sync"]))
        for state in (a, b):
            state.get("log_window", {}).pop("seconds", None)  # wall time, the one thing that may differ
        assert _same(a, b), name
    assert (
        load_file(str(runs["async"] / "model.safetensors")).keys()
        == load_file(str(runs["sync"] / "model.safetensors")).keys()
    )


def _same(a, b) -> bool:
    """Bitwise equality of nested state dicts (tensors, numbers, strings, lists)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b
