"""One staged publish for every folder: the old copy survives until the new one is in place, a failed write
leaves nothing behind, a full disk or a read-only folder is one paragraph, and files get the umask's mode."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import torch
from mounts import small_disk

import ftdist
from conftest import tiny_gpt_config
from ftdist.errors import FtdistError
from ftdist.staging import publish, staged_folder, storage_errno


def test_old_copy_survives_a_failed_write(tmp_path):
    target = tmp_path / "export"
    with staged_folder(target) as folder:
        (folder / "a.txt").write_text("old")
    with pytest.raises(ValueError), staged_folder(target) as folder:
        (folder / "a.txt").write_text("half")
        raise ValueError("writer crashed")
    assert (target / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # no .tmp-/.old- left over


def test_replace_swaps_whole_folders(tmp_path):
    target = tmp_path / "final"
    for text in ("one", "two"):
        with staged_folder(target) as folder:
            (folder / "w.txt").write_text(text)
    assert [p.name for p in target.iterdir()] == ["w.txt"]
    assert (target / "w.txt").read_text() == "two"


def test_replace_false_keeps_the_first_copy(tmp_path):
    target = tmp_path / "base"
    for text in ("first", "second"):
        with staged_folder(target, replace=False) as folder:
            (folder / "w.txt").write_text(text)
    assert (target / "w.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["base"]


def test_publish_gives_files_the_umask_mode(tmp_path):
    staging = tmp_path / ".tmp-x"
    staging.mkdir()
    private = staging / "model.safetensors"
    private.write_bytes(b"w")
    os.chmod(private, 0o600)  # as safetensors' private temporary file leaves it
    old = os.umask(0o022)
    try:
        publish(staging, tmp_path / "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x" / "model.safetensors").stat().st_mode) == 0o644


@pytest.mark.parametrize(
    "error, code",
    [
        (OSError(errno.ENOSPC, "No space left on device"), errno.ENOSPC),
        (RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 320 vs 238"), errno.ENOSPC),
        (Exception("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"), errno.ENOSPC),
        (PermissionError(errno.EACCES, "Permission denied"), errno.EACCES),
        (OSError(errno.EROFS, "Read-only file system"), errno.EROFS),
        (ValueError("a bug"), None),
    ],
)
def test_hidden_errnos_are_recognised(error, code):
    assert storage_errno(error) == code


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_every_run_file_has_the_umask_mode(tmp_path, mask):
    run_dir = tmp_path / "run"
    old = os.umask(mask)
    try:
        ftdist.train(tiny_gpt_config(run_dir), ["train.max_steps=10", "checkpoint.every=5"])
    finally:
        os.umask(old)
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files) and len(files) > 10
    wrong = {str(p.relative_to(run_dir)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files}
    wrong = {name: mode for name, mode in wrong.items() if mode != oct(0o666 & ~mask)}
    assert not wrong, f"files without the umask's mode {oct(0o666 & ~mask)}: {wrong}"
    folders = [p for p in run_dir.rglob("*") if p.is_dir()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o777 & ~mask for p in folders)


def test_torch_writer_on_a_full_disk_is_one_paragraph(tmp_path):
    with small_disk(tmp_path / "disk", "64k") as disk:
        _write_too_much(disk)


def _write_too_much(disk: Path) -> None:
    target = disk / "step-1"
    with pytest.raises(FtdistError) as caught, staged_folder(target, intact="latest still names step-0") as folder:
        torch.save(torch.zeros(1 << 16), folder / "optimizer.pt")  # 256 KB into 64 KB
    message = str(caught.value)
    assert "the disk is full" in message and str(target) in message and "latest still names step-0" in message
    assert "\n" not in message
    assert list(Path(disk).iterdir()) == []  # the partial folder is gone
