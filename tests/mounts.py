"""Real small and read-only filesystems for the failure tests: a tmpfs of a given size, and a read-only bind
mount. Both need root with mount rights (as on the CI machine); without them the tests skip and say why. The
chmod route does not work for root, which bypasses file permissions.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextlib.contextmanager
def small_disk(point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` (e.g. "1m") mounted at `point` for the block."""
    point.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root with mount rights): {done.stderr.strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def resize(point: Path, size: str) -> None:
    done = _mount("-o", f"remount,size={size}", str(point))
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def read_only_switch(folder: Path) -> Iterator[Callable[[bool], None]]:
    """`lock(True)` bind-mounts `folder` read-only over itself (files already open for writing stay writable, as
    on a filesystem remounted under a running job); `lock(False)` undoes it. Checked up front, so a machine
    without mount rights skips before the run starts."""
    probe = _mount("--bind", str(folder), str(folder))
    if probe.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root with mount rights): {probe.stderr.strip()}")
    subprocess.run(["umount", str(folder)], capture_output=True)
    locked: list[bool] = []

    def lock(on: bool) -> None:
        if on and not locked:
            assert _mount("--bind", str(folder), str(folder)).returncode == 0
            done = _mount("-o", "remount,bind,ro", str(folder))
            assert done.returncode == 0, done.stderr
            locked.append(True)
        elif not on and locked:
            subprocess.run(["umount", str(folder)], capture_output=True)
            locked.clear()

    try:
        yield lock
    finally:
        lock(False)
