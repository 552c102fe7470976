"""Crash-safe checkpoint folders: write to a temporary folder, seal it, rename it, then move `latest`.

Layout under `<run>/checkpoints/`:
  step-<N>/        a complete checkpoint (strategy's model/optimizer files, trainer state, config, tokenizer)
  step-<N>/MANIFEST.json   written last: every file with its size; a folder without it is partial
  latest           a one-line text file naming the newest complete folder, replaced atomically
A process killed at any point leaves either the old `latest` or the new one, never a half-written folder
behind it. `resume: auto` re-checks the manifest and skips (with a warning) a folder that does not match.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from ftdist.distributed.collectives import all_agree
from ftdist.errors import FtdistError, FtdistWarning
from ftdist.staging import check_free_space, publish, publish_text, staging_path, storage_errors

MANIFEST = "MANIFEST.json"
LATEST = "latest"


class CheckpointFolders:
    """Save, prune and find checkpoints under one run's `checkpoints/` folder."""

    def __init__(self, root: Path, keep_last: int, is_main: bool = True) -> None:
        self.root, self.keep_last, self.is_main = Path(root), keep_last, is_main

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """Call `write(folder)` on every rank, then seal and publish the folder. Returns its final path.

        A failure on any rank (a full disk, a read-only folder) is agreed on by all ranks, so none waits forever
        at a barrier; the partial folder is removed and `latest` keeps naming the previous checkpoint."""
        save = self.begin(step)
        save.together(lambda: write(save.staging))
        save.together(save.seal if self.is_main else None)
        return save.final

    def begin(self, step: int) -> Save:
        """The first phase of a save, on every rank together: rank 0 checks the free space and makes the empty
        staging folder every rank writes into."""
        save = Save(self, step)
        save.together(save.begin if self.is_main else None)
        return save

    def intact(self) -> str:
        """What survives a failed save, for the error message."""
        pointer = self.root / LATEST
        if pointer.exists():
            return f"{pointer} still names {pointer.read_text().strip()}, which checkpoint.resume=auto continues from"
        return "No earlier checkpoint of this run exists"

    def last_size(self) -> int:
        """The bytes of the newest sealed checkpoint (0 if none): about what the next one needs."""
        pointer = self.root / LATEST
        if not pointer.exists():
            return 0
        try:
            files = json.loads((self.root / pointer.read_text().strip() / MANIFEST).read_text())["files"]
        except (OSError, ValueError, KeyError):
            return 0
        return sum(files.values())

    def latest(self) -> Path | None:
        """The newest checkpoint that verifies. Newer folders that do not (partial, corrupt) are skipped with a
        warning. Scanning, rather than trusting `latest` alone, also covers a crash between the rename and the
        pointer update."""
        for folder in sorted(self.complete_folders(), key=_step_of, reverse=True):
            problem = verify(folder)
            if problem is None:
                return folder
            warnings.warn(f"skipping checkpoint {folder}: {problem}", FtdistWarning, stacklevel=2)
        return None

    def complete_folders(self) -> list[Path]:
        if not self.root.exists():
            return []
        return [p for p in self.root.glob("step-*") if p.is_dir()]

    def _prune(self) -> None:
        """Keep the newest `keep_last` complete checkpoints; never delete the one `latest` names."""
        keep = (self.root / LATEST).read_text().strip()
        folders = sorted(self.complete_folders(), key=_step_of, reverse=True)
        for folder in folders[self.keep_last :]:
            if folder.name != keep:
                shutil.rmtree(folder, ignore_errors=True)


def verify(folder: Path) -> str | None:
    """None if `folder` is a sealed checkpoint whose files all have their recorded sizes, else the reason."""
    manifest = folder / MANIFEST
    if not folder.is_dir():
        return "folder is missing"
    if not manifest.exists():
        return f"no {MANIFEST} (the save was interrupted)"
    try:
        files = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError) as error:
        return f"unreadable {MANIFEST} ({error})"
    for name, size in files.items():
        path = folder / name
        if not path.exists():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, expected {size} (truncated or corrupt)"
    return None


def resolve_resume(root: Path, policy: str, is_main: bool = True) -> Path | None:
    """Where to resume from under `checkpoint.resume` (`auto` | `never` | a folder), or None to start fresh."""
    manager = CheckpointFolders(root, keep_last=1, is_main=is_main)
    if policy == "never":
        if manager.complete_folders():
            raise FtdistError(
                f"{root} already holds checkpoints and checkpoint.resume is never, so they would be overwritten; "
                "set checkpoint.resume=auto to continue that run, or choose another output_dir"
            )
        return None
    if policy == "auto":
        return manager.latest()
    folder = Path(policy)
    problem = verify(folder)
    if problem:
        raise FtdistError(f"checkpoint.resume={policy} cannot be used: {problem}; pick another checkpoint or auto")
    return folder


def _write_manifest(folder: Path, step: int) -> None:
    files = {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}
    (folder / MANIFEST).write_text(json.dumps({"step": step, "files": files}, indent=1))  # fsynced by publish


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix("step-"))
    except ValueError:
        return -1


class Save:
    """One save in progress: where it goes, what survives if it fails, and its phases."""

    def __init__(self, folders: CheckpointFolders, step: int) -> None:
        self.folders, self.step = folders, step
        self.final = folders.root / f"step-{step}"
        self.staging = staging_path(self.final)  # one name every rank agrees on: they all write their shards into it
        self.intact = folders.intact()
        self.needed = folders.last_size()
        self.give_up = threading.Event()  # set on an error path: rank 0 stops waiting for the other ranks

    def begin(self) -> None:
        check_free_space(self.final, self.needed, self.intact)
        shutil.rmtree(self.staging, ignore_errors=True)  # leftover of a crash during an earlier save
        self.staging.mkdir(parents=True)

    def seal(self) -> None:
        _write_manifest(self.staging, self.step)
        publish(self.staging, self.final)  # the same step saved again (e.g. after a resume) replaces it whole
        publish_text(self.folders.root / LATEST, self.final.name + "\n")
        self.folders._prune()

    def failed_elsewhere(self) -> FtdistError:
        return FtdistError(
            f"another rank failed while writing checkpoint {self.final} (its error is in that rank's output); "
            f"the partial copy was removed. {self.intact}"
        )

    def guarded(self, action: Callable[[], None]) -> None:
        """`action` with its storage errors translated into one paragraph that says what survives."""
        with storage_errors(self.final, intact=self.intact, needed=self.needed):
            action()

    def together(self, action: Callable[[], None] | None) -> None:
        """`action` on this rank (None: nothing); all ranks learn of a failure (and rank 0 removes the partial
        copy). The agreement is also the barrier between the phases."""
        try:
            all_agree((lambda: self.guarded(action)) if action is not None else None, self.failed_elsewhere)
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        if self.folders.is_main:
            shutil.rmtree(self.staging, ignore_errors=True)

    # --- the background half of an asynchronous save: no collective, the ranks meet through marker files ----
    def finish_in_background(self, write: Callable[[], None], rank: int, world: int, timeout_s: float) -> None:
        """Run `write` (this rank's files), then mark this rank written (or failed). Rank 0 then waits for every
        rank's mark and seals; a failed mark, or none within `timeout_s`, discards the copy. Raises this rank's
        own failure (rank 0: also another rank's), for the caller to report at the next agreement."""
        try:
            self.guarded(write)
        except BaseException as error:
            _mark(self.staging, f"failed.rank{rank}", f"{type(error).__name__}: {error}")
            if rank == 0:
                self.discard()
            raise
        _mark(self.staging, f"written.rank{rank}", "")
        if rank != 0:
            return
        deadline = time.monotonic() + timeout_s
        while not all((self.staging / f"{MARK}written.rank{r}").exists() for r in range(world)):
            failed = sorted(self.staging.glob(f"{MARK}failed.rank*"))
            if failed or self.give_up.is_set() or time.monotonic() > deadline:
                self.discard()
                raise (FtdistError(failed[0].read_text()) if failed else self.failed_elsewhere())
            time.sleep(0.05)
        for mark in self.staging.glob(f"{MARK}*"):
            mark.unlink()
        self.guarded(self.seal)


MARK = ".ftdist-"  # marker files of an asynchronous save, removed before the manifest is written


def _mark(staging: Path, name: str, text: str) -> None:
    with contextlib.suppress(OSError):  # a folder rank 0 already discarded
        (staging / f"{MARK}{name}").write_text(text)
