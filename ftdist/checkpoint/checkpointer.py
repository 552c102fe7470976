"""`Checkpointer`: the one owner of a run's checkpoints: when to save, what a checkpoint holds, how a run resumes.

The loop calls `maybe_save(step)` after every step and `save_last(step)` at the end; the cadence lives here, not
in the loop. A checkpoint holds:
  - the model and optimizer, in the strategy's own format (`strategy.save` / `strategy.load`);
  - `trainer_state.rank<R>.pt`: the step, the random generators and every registered part's `state_dict()`
    (the scheduler, the data position, the loss scaler, the log window): a new resumable part is one more entry
    in `parts`, never a change to the loop;
  - on rank 0, what makes the folder self-describing: `strategy.json`, `config.yaml`, the data fingerprint, the
    model's `config.json` and the tokenizer.
Folders are written aside and renamed by `CheckpointFolders` (ftdist/checkpoint/folders.py), the one publish
path. torchtitan's `CheckpointManager` is the model: stateful parts, one manager, the loop only asks it.

Asynchronous saves (`checkpoint.async_save`): at the step boundary every rank serializes the small trainer state,
rank 0 writes the small files, and each rank starts copying its states to host memory (`strategy.snapshot`).
The copy runs while the next step's forward and backward do, which leave weights and optimizer state as they
are; the loop's next optimizer update waits for it (`before_update`). A background thread then writes the large
files while training goes on, and rank 0 seals once every rank has marked its files written. At most one save
is in flight: the next save, the end of the run and preemption wait for it (and all ranks agree whether it
failed); an error path waits for it without agreeing. A crash mid-write leaves `latest` on the previous
checkpoint.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch

from ftdist.checkpoint.folders import CheckpointFolders, Save, resolve_resume
from ftdist.checkpoint.resume_check import compare_with_checkpoint, record_data_fingerprint
from ftdist.checkpoint.trainer_state import capture_rng, load_trainer_state, restore_rng, save_trainer_state, state_file
from ftdist.config import RunConfig, dump_config
from ftdist.distributed.collectives import all_agree
from ftdist.distributed.env import DistEnv
from ftdist.run_folder import RunFolder
from ftdist.strategies import check_resumable
from ftdist.strategies.base import FORMAT_RECORD, Strategy


class Stateful(Protocol):
    def state_dict(self) -> Any: ...
    def load_state_dict(self, state: Any) -> None: ...


class Checkpointer:
    """Cadence, saving, loading and resume checks for one run. Build it once the strategy exists (setup_job);
    `resume_point()` before any data or model is loaded; `track(...)` once they are."""

    def __init__(
        self,
        config: RunConfig,
        run: RunFolder,
        env: DistEnv,
        strategy: Strategy,
        on_saved: Callable[[int, Path], None] | None = None,
    ) -> None:
        self.config, self.run, self.env, self.strategy, self.on_saved = config, run, env, strategy, on_saved
        self.stalls: list[float] = []  # seconds each save held the loop (the async writer's work excluded)
        self.waits: list[float] = []  # of which: waiting for the previous asynchronous save to be sealed
        self.copy_waits: list[float] = []  # of which: the next update waiting for the host copy
        self.every = config.checkpoint.every
        self.max_steps = config.train.max_steps
        self.folders = CheckpointFolders(run.checkpoints, config.checkpoint.keep_last, env.is_main)
        self.async_save = config.checkpoint.async_save
        self._pending: _Pending | None = None

    def resume_point(self) -> tuple[Path | None, str | None]:
        """(the checkpoint this run continues from or None, a note on config keys that differ from it). Refuses,
        before anything is loaded, a checkpoint this run cannot resume: another format, another world size for
        a format tied to it, a changed model/method/data, or a run already finished."""
        folder = resolve_resume(self.run.checkpoints, self.config.checkpoint.resume, self.env.is_main)
        if folder is None:
            return None, None
        check_resumable(self.config, folder, self.env.world_size)
        return folder, compare_with_checkpoint(self.config, folder)

    def track(
        self,
        model: Any,
        optimizer: Any,
        tokenizer: Any,
        parts: dict[str, Stateful],
        before_save: Callable[[], None] = lambda: None,
    ) -> None:
        """What a checkpoint holds. `before_save` runs first on every rank (the finite check: `latest` never
        names a checkpoint of non-finite weights)."""
        self.model, self.optimizer, self.tokenizer, self.parts = model, optimizer, tokenizer, parts
        self.before_save = before_save

    # --- cadence ---------------------------------------------------------------------------------------------
    def maybe_save(self, step: int) -> Path | None:
        """Save every `checkpoint.every` steps; the last step is `save_last`'s (it is saved once, not twice)."""
        if self.every and step % self.every == 0 and step < self.max_steps:
            return self.save(step)
        return None

    def save_last(self, step: int) -> Path | None:
        """At the end of a run, unless `checkpoint.every: 0` (then `final/` is the run's only output). Returns
        once every save is sealed."""
        self.wait()
        if self.every and not self.run.checkpoint(step).exists():
            return self.save_now(step)
        return None

    def save_now(self, step: int) -> Path:
        """Save and return once it is sealed (preemption: the process exits next)."""
        folder = self.save(step)
        self.wait()
        return folder

    def latest(self) -> Path | None:
        return self.folders.latest()

    def intact(self) -> str:
        return self.folders.intact()

    # --- saving and loading -----------------------------------------------------------------------------------
    def save(self, step: int) -> Path:
        """Save this step (after the one in flight, if any, is sealed); returns the folder it is published as.
        Asynchronous where the strategy can snapshot, unless `checkpoint.async_save: false`."""
        started = time.perf_counter()
        self.wait()
        self.waits.append(time.perf_counter() - started)
        self.before_save()
        save = self.folders.begin(step)
        asynchronous = self.async_save is not False and self.strategy.can_snapshot
        copy = self._snapshot(save) if asynchronous else None
        if copy is None:
            save.together(lambda: self._write(save.staging, step))
            save.together(save.seal if self.env.is_main else None)
            self._saved(step, save.final)
        else:
            self._pending = _Pending(save, copy, self.env.rank, self._world_size())
        self.stalls.append(time.perf_counter() - started)
        self.copy_waits.append(0.0)
        return save.final

    def before_update(self) -> None:
        """The loop calls this right before every optimizer update: an asynchronous save's host copy must be
        complete before the weights and the optimizer state change. The time waited counts in that save's stall."""
        pending = self._pending
        if pending is not None and not pending.copied.is_set():
            started = time.perf_counter()
            pending.copied.wait()
            waited = time.perf_counter() - started
            self.stalls[-1] += waited
            self.copy_waits[-1] += waited

    def stall_metrics(self) -> dict[str, float]:
        """How long saves held the loop, for the run's last event: mean and longest, in seconds."""
        if not self.stalls:
            return {}
        return {
            "checkpoint_stall_s": sum(self.stalls) / len(self.stalls),
            "checkpoint_stall_max_s": max(self.stalls),
            "checkpoint_wait_s": sum(self.waits) / len(self.waits),  # the part spent waiting for the last save
            "checkpoint_copy_wait_s": sum(self.copy_waits) / len(self.copy_waits),  # the next update, for the copy
        }

    def wait(self) -> None:
        """Let the save in flight finish; every rank learns whether it failed on any (a collective: every rank
        calls it at the same point, which the loop guarantees)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        error = pending.join()
        all_agree(_raiser(error), pending.save.failed_elsewhere)
        self._saved(pending.save.step, pending.save.final)

    def abandon(self) -> None:
        """On an error path: let the write in flight end (sealed or discarded) without a collective, since the
        other ranks may not be there to agree."""
        if self._pending is not None:
            self._pending.save.give_up.set()  # rank 0 does not wait for ranks that may have failed
            self._pending.join()
            self._pending = None

    def _saved(self, step: int, folder: Path) -> None:
        if self.on_saved is not None:
            self.on_saved(step, folder)

    def _write(self, folder: Path, step: int) -> None:
        self.strategy.save(self.model, self.optimizer, folder)
        save_trainer_state(folder, self.env.rank, self._trainer_state(step))
        self._write_description(folder)

    def _trainer_state(self, step: int) -> dict[str, Any]:
        return {"step": step, "rng": capture_rng(), **{name: part.state_dict() for name, part in self.parts.items()}}

    def _write_description(self, folder: Path) -> None:
        """Rank 0's small files, which make the folder self-describing."""
        if self.env.is_main:
            (folder / FORMAT_RECORD).write_text(json.dumps(self.strategy.format_record()))
            (folder / "config.yaml").write_text(dump_config(self.config))
            record_data_fingerprint(folder, self.config)  # a resume refuses changed data files
            self.strategy.unwrap(self.model).config.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)

    def _snapshot(self, save: Save) -> Callable[[], Callable[[], None]]:
        """Start the step's copy to host memory; return the strategy's `copied` extended with the trainer
        state's file. The small files are written now; all ranks agree that this worked."""
        captured: dict[str, Any] = {}

        def capture() -> None:
            captured["model"] = self.strategy.snapshot(self.model, self.optimizer, save.staging)
            buffer = io.BytesIO()  # serialized now: the parts' state dicts hold references that change next step
            torch.save(self._trainer_state(save.step), buffer)
            captured["trainer_state"] = buffer.getvalue()
            self._write_description(save.staging)

        save.together(capture)
        copied_model, state_bytes = captured["model"], captured["trainer_state"]
        state_path = state_file(save.staging, self.env.rank)

        def copied() -> Callable[[], None]:
            write_model = copied_model()

            def write() -> None:
                write_model()
                state_path.write_bytes(state_bytes)

            return write

        return copied

    def _world_size(self) -> int:
        import torch.distributed as dist

        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    def load(self, folder: Path) -> int:
        """Restore everything `save` wrote; returns the step to continue from."""
        self.strategy.load(self.model, self.optimizer, folder)
        state = load_trainer_state(folder, self.env.rank)
        for name, part in self.parts.items():
            part.load_state_dict(state.get(name))
        restore_rng(state["rng"])
        return state["step"]


class _Pending:
    """A save whose states a background thread copies to host memory (`copied` is set once they are), then
    writes."""

    TIMEOUT_S = 3600.0  # rank 0 waits this long for the other ranks' files before it gives the save up

    def __init__(self, save: Save, copy: Callable[[], Callable[[], None]], rank: int, world: int) -> None:
        self.save, self.error = save, None
        self.copied = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(copy, rank, world), name="ftdist-save", daemon=True)
        self.thread.start()

    def _run(self, copy: Callable[[], Callable[[], None]], rank: int, world: int) -> None:
        def copy_then_write() -> None:
            try:
                write = copy()
            finally:
                self.copied.set()  # a failed copy also frees the loop: the error is reported at the next wait
            write()

        try:
            self.save.finish_in_background(copy_then_write, rank, world, self.TIMEOUT_S)
        except BaseException as error:  # reported on the main thread, at the next agreement
            self.error = error

    def join(self) -> BaseException | None:
        self.thread.join()
        return self.error


def _raiser(error: BaseException | None) -> Callable[[], None] | None:
    if error is None:
        return None

    def raise_it() -> None:
        raise error

    return raise_it
