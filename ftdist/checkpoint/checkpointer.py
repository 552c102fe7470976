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
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ftdist.checkpoint.folders import CheckpointFolders, resolve_resume
from ftdist.checkpoint.resume_check import compare_with_checkpoint, record_data_fingerprint
from ftdist.checkpoint.trainer_state import capture_rng, load_trainer_state, restore_rng, save_trainer_state
from ftdist.config import RunConfig, dump_config
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
        self.every = config.checkpoint.every
        self.max_steps = config.train.max_steps
        self.folders = CheckpointFolders(run.checkpoints, config.checkpoint.keep_last, env.is_main)

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
        """At the end of a run, unless `checkpoint.every: 0` (then `final/` is the run's only output)."""
        if self.every and not self.run.checkpoint(step).exists():
            return self.save(step)
        return None

    def latest(self) -> Path | None:
        return self.folders.latest()

    def intact(self) -> str:
        return self.folders.intact()

    # --- saving and loading -----------------------------------------------------------------------------------
    def save(self, step: int) -> Path:
        self.before_save()
        folder = self.folders.save(step, lambda staging: self._write(staging, step))
        if self.on_saved is not None:
            self.on_saved(step, folder)
        return folder

    def _write(self, folder: Path, step: int) -> None:
        self.strategy.save(self.model, self.optimizer, folder)
        state = {"step": step, "rng": capture_rng(), **{name: part.state_dict() for name, part in self.parts.items()}}
        save_trainer_state(folder, self.env.rank, state)
        if self.env.is_main:
            (folder / FORMAT_RECORD).write_text(json.dumps(self.strategy.format_record()))
            (folder / "config.yaml").write_text(dump_config(self.config))
            record_data_fingerprint(folder, self.config)  # a resume refuses changed data files
            self.strategy.unwrap(self.model).config.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)

    def load(self, folder: Path) -> int:
        """Restore everything `save` wrote; returns the step to continue from."""
        self.strategy.load(self.model, self.optimizer, folder)
        state = load_trainer_state(folder, self.env.rank)
        for name, part in self.parts.items():
            part.load_state_dict(state.get(name))
        restore_rng(state["rng"])
        return state["step"]
