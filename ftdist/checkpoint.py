"""Crash-safe checkpoint folders: write to a temporary folder, seal it, rename it, then move `latest`.

Layout under `<run>/checkpoints/`:
  step-<N>/        a complete checkpoint (strategy's model/optimizer files, trainer state, config, tokenizer)
  step-<N>/MANIFEST.json   written last: every file with its size; a folder without it is partial
  latest           a one-line text file naming the newest complete folder, replaced atomically
A process killed at any point leaves either the old `latest` or the new one, never a half-written folder
behind it. `resume: auto` re-checks the manifest and skips (with a warning) a folder that does not match.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import torch.distributed as dist

from ftdist.errors import FtdistError

MANIFEST = "MANIFEST.json"
LATEST = "latest"


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


class CheckpointManager:
    """Save, prune and find checkpoints under one run's `checkpoints/` folder."""

    def __init__(self, root: Path, keep_last: int, is_main: bool = True) -> None:
        self.root, self.keep_last, self.is_main = Path(root), keep_last, is_main

    def save(self, step: int, write: Callable[[Path], None]) -> Path:
        """Call `write(folder)` on every rank, then seal and publish the folder. Returns its final path."""
        staging, final = self.root / f".tmp-step-{step}", self.root / f"step-{step}"
        if self.is_main:
            shutil.rmtree(staging, ignore_errors=True)  # leftover of a crash during an earlier save
            staging.mkdir(parents=True)
        _barrier()
        write(staging)
        _barrier()  # every rank has finished writing its shards
        if self.is_main:
            _write_manifest(staging, step)
            if final.exists():  # the same step saved again (e.g. after a resume): replace it whole
                shutil.rmtree(final)
            os.replace(staging, final)
            _fsync_dir(self.root)
            _atomic_write(self.root / LATEST, final.name + "\n")
            self._prune()
        _barrier()
        return final

    def latest(self) -> Path | None:
        """The newest checkpoint that verifies. Newer folders that do not (partial, corrupt) are skipped with a
        warning. Scanning, rather than trusting `latest` alone, also covers a crash between the rename and the
        pointer update."""
        for folder in sorted(self.complete_folders(), key=_step_of, reverse=True):
            problem = verify(folder)
            if problem is None:
                return folder
            warnings.warn(f"skipping checkpoint {folder}: {problem}", stacklevel=2)
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
    manager = CheckpointManager(root, keep_last=1, is_main=is_main)
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
    for path in folder.rglob("*"):
        if path.is_file():
            _fsync_file(path)
    _atomic_write(folder / MANIFEST, json.dumps({"step": step, "files": files}, indent=1))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _step_of(folder: Path) -> int:
    try:
        return int(folder.name.removeprefix("step-"))
    except ValueError:
        return -1
