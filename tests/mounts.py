"""Real small and read-only filesystems for the failure tests: a tmpfs of a given size, and a read-only bind mount.

Both need root with mount rights (as on the CI machine); without them the tests skip and say why. The chmod
route does not work for root, which bypasses file permissions.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`small_disk("1m")` mounts a tmpfs of that size under tmp_path and returns it; unmounted afterwards."""
    mounted: list[Path] = []

    def make(size: str) -> Path:
        point = tmp_path / f"disk{len(mounted)}"
        point.mkdir()
        done = _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point))
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root with mount rights): {done.stderr.strip()}")
        mounted.append(point)
        return point

    yield make
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def resize(point: Path, size: str) -> None:
    done = _mount("-o", f"remount,size={size}", str(point))
    assert done.returncode == 0, done.stderr


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], Callable[[], None]]]:
    """`undo = read_only(folder)`: bind-mount `folder` read-only over itself (files already open for writing
    stay writable, as on a filesystem remounted under a running job); `undo()` makes it writable again."""
    points: list[Path] = []

    def make(folder: Path) -> Callable[[], None]:
        done = _mount("--bind", str(folder), str(folder))
        if done.returncode != 0:
            pytest.skip(f"cannot bind-mount here (needs root with mount rights): {done.stderr.strip()}")
        points.append(folder)
        done = _mount("-o", "remount,bind,ro", str(folder))
        assert done.returncode == 0, done.stderr

        def undo() -> None:
            if folder in points:
                points.remove(folder)
                subprocess.run(["umount", str(folder)], capture_output=True)

        return undo

    yield make
    for point in points:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)
