"""Publish a folder or a file whole or not at all, and say plainly when the disk or its permissions refuse.

Every site that publishes (a checkpoint, `final/`, an export or merge, the prepared-data cache, a scratch base,
a converted GGUF) goes through here, so they share one crash story:
  1. write into a temporary sibling `.tmp-<name>-...` (same filesystem, so the rename is atomic);
  2. give every file the mode the umask gives (some writers, e.g. safetensors', go through a private 0600
     temporary file, which would hide a run's weights from teammates on a shared filesystem);
  3. fsync every file, then the parent folder;
  4. move an existing target aside, rename the new folder into place, and only then delete the old copy.
A crash at any point leaves the old copy (under its name, or moved aside as `.old-<name>-...`) or the new one.

A write that fails for lack of space (ENOSPC, EDQUOT) or permission (EACCES, EPERM, EROFS) removes the partial
folder and raises one `FtdistError` paragraph: the folder, the bytes needed if known, what is still intact, and
what to do. Writers that hide the errno (torch's zip writer: "unexpected pos"; safetensors: "IoError(Os { code:
28 ...") are recognised from their messages.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from ftdist.errors import FtdistError

SPACE = {errno.ENOSPC, errno.EDQUOT}
PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}
# Messages of writers that do not raise OSError, mapped to the errno they stand for.
_HIDDEN_ERRNO = (
    (re.compile(r"code: (\d+)"), None),  # Rust's io::Error, as safetensors prints it
    (re.compile(r"No space left|unexpected pos|file write failed|StorageFull"), errno.ENOSPC),
    (re.compile(r"Disk quota|QuotaExceeded"), errno.EDQUOT),
    (re.compile(r"Read-only file system|ReadOnlyFilesystem"), errno.EROFS),
    (re.compile(r"Permission denied|PermissionDenied"), errno.EACCES),
)


class StorageError(FtdistError):
    """A publish failed for lack of space or permission; the message names the folder and what is intact."""


def umask() -> int:
    """The process umask, read without changing it where Linux allows (os.umask is set-and-return)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask_modes(root: Path) -> None:
    """Files get 0o666 & ~umask and folders 0o777 & ~umask, as if each had been created with open()/mkdir()."""
    mask = umask()
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in paths:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def fsync_tree(root: Path) -> None:
    """fsync every file under `root` (or `root` itself), then the folders that hold them."""
    paths = [root, *root.rglob("*")] if root.is_dir() else [root]
    for path in sorted(paths, key=lambda p: p.is_dir()):  # files first, then their folders
        fsync_path(path)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def staging_path(target: Path, tag: str = "") -> Path:
    """The temporary sibling a target is written into: `.tmp-<name><tag>`."""
    return target.with_name(f".tmp-{target.name}{tag}")


def publish(staging: Path, target: Path, replace: bool = True) -> Path:
    """Seal `staging` (modes, fsync) and rename it to `target`. An existing target is moved aside first and
    deleted only once the new copy is in place; with `replace=False` an existing target wins and `staging` is
    dropped (another process published the same content first)."""
    apply_umask_modes(staging)
    fsync_tree(staging)
    old = None
    if target.exists():
        if not replace:
            _remove(staging)
            return target
        old = target.with_name(f".old-{target.name}-{os.getpid()}")
        _remove(old)
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old is not None and not target.exists():
            os.replace(old, target)  # put the old copy back under its name
        if not replace and target.exists():
            _remove(staging)
            return target
        raise
    fsync_path(target.parent)
    if old is not None:
        _remove(old)
    return target


def publish_text(target: Path, text: str, intact: str = "") -> None:
    """Replace a small file atomically (write aside, fsync, rename, fsync the folder)."""
    tmp = target.with_name(f".tmp-{target.name}-{os.getpid()}")
    with storage_errors(target, intact=intact, partial=tmp):
        with open(tmp, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        fsync_path(target.parent)


@contextlib.contextmanager
def staged_folder(target: Path, intact: str = "", replace: bool = True, needed: int | None = None) -> Iterator[Path]:
    """Yield an empty temporary sibling of `target` to write into; publish it when the block ends normally.
    On any failure the partial folder is removed; space and permission failures become one FtdistError."""
    target = Path(target)
    staging = staging_path(target, f"-{os.getpid()}")
    with storage_errors(target, intact=intact, needed=needed, partial=staging):
        _remove(staging)
        staging.mkdir(parents=True)
        try:
            yield staging
        except BaseException:
            _remove(staging)
            raise
        publish(staging, target, replace=replace)


@contextlib.contextmanager
def storage_errors(
    target: Path, intact: str = "", needed: int | None = None, partial: Path | None = None
) -> Iterator[None]:
    """Turn a space or permission failure inside the block into one FtdistError paragraph (removing
    `partial`); any other error passes through unchanged."""
    try:
        yield
    except FtdistError:
        raise
    except Exception as error:
        code = storage_errno(error)
        if code is None:
            raise
        if partial is not None:
            _remove(partial)
        raise storage_error(code, Path(target), intact=intact, needed=needed) from None


def storage_errno(error: BaseException) -> int | None:
    """The space/permission errno behind `error` (or any error it was raised from), else None."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in SPACE | PERMISSION:
            return seen.errno
        text = str(seen)
        for pattern, code in _HIDDEN_ERRNO:
            match = pattern.search(text)
            if match:
                found = int(match.group(1)) if code is None else code
                if found in SPACE | PERMISSION:
                    return found
        seen = seen.__cause__ or seen.__context__
    return None


def storage_error(code: int, target: Path, intact: str = "", needed: int | None = None) -> StorageError:
    """The one paragraph for a failed publish: what failed, where, how much, what survived, what to do."""
    where = _existing_parent(target)
    kept = f" {intact}." if intact else ""
    if code in SPACE:
        free = shutil.disk_usage(where).free
        reason = "the disk quota is used up" if code == errno.EDQUOT else "the disk is full"
        size = f"; it needs about {human_bytes(needed)}" if needed else ""
        return StorageError(
            f"could not write {target}: {reason} on the filesystem holding {where} ({human_bytes(free)} free{size}). "
            f"The partial copy was removed.{kept} Free space there (e.g. lower checkpoint.keep_last, delete old "
            "runs) or point output_dir at a larger filesystem, then run the same command again"
        )
    reason = "the filesystem is read-only" if code == errno.EROFS else "permission is denied"
    return StorageError(
        f"could not write {target}: {reason} ({where} is not writable by this process). The partial copy was "
        f"removed.{kept} Make {where} writable (or remount it read-write), or choose another output_dir, then run "
        "the same command again"
    )


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(_existing_parent(path)).free


def check_free_space(target: Path, needed: int, intact: str = "") -> None:
    """Refuse before writing when the filesystem plainly cannot hold `needed` bytes."""
    if needed and free_bytes(target) < needed:
        raise storage_error(errno.ENOSPC, target, intact=intact, needed=needed)


def human_bytes(count: int | None) -> str:
    value = float(count or 0)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path if path.is_dir() else path.parent


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
