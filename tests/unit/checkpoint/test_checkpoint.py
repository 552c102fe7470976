"""Checkpoint folders are sealed before `latest` moves; partial and corrupt ones are skipped on resume."""

from __future__ import annotations

import pytest

from ftdist.checkpoint.folders import CheckpointFolders, resolve_resume, verify
from ftdist.errors import FtdistError


def save(manager: CheckpointFolders, step: int, payload: bytes = b"weights") -> None:
    manager.save(step, lambda folder: (folder / "model.bin").write_bytes(payload))


def test_save_seals_renames_and_points_latest(tmp_path):
    manager = CheckpointFolders(tmp_path, keep_last=2)
    save(manager, 10)
    assert (tmp_path / "latest").read_text().strip() == "step-10"
    assert verify(tmp_path / "step-10") is None
    assert not list(tmp_path.glob(".tmp-*"))


def test_keep_last_prunes_oldest(tmp_path):
    manager = CheckpointFolders(tmp_path, keep_last=2)
    for step in (10, 20, 30):
        save(manager, step)
    assert sorted(p.name for p in manager.complete_folders()) == ["step-20", "step-30"]


def test_partial_save_is_ignored_and_latest_kept(tmp_path):
    manager = CheckpointFolders(tmp_path, keep_last=3)
    save(manager, 10)

    def crash(folder):
        (folder / "model.bin").write_bytes(b"half")
        raise KeyboardInterrupt  # the process dies mid-save

    with pytest.raises(KeyboardInterrupt):
        manager.save(20, crash)
    assert (tmp_path / "latest").read_text().strip() == "step-10"
    assert manager.latest() == tmp_path / "step-10"


def test_corrupt_latest_falls_back_with_warning(tmp_path):
    manager = CheckpointFolders(tmp_path, keep_last=3)
    save(manager, 10)
    save(manager, 20)
    (tmp_path / "step-20" / "model.bin").write_bytes(b"trunc")  # size no longer matches the manifest
    with pytest.warns(UserWarning, match="skipping checkpoint .*step-20.*expected 7"):
        assert manager.latest() == tmp_path / "step-10"


def test_folder_without_manifest_is_skipped(tmp_path):
    manager = CheckpointFolders(tmp_path, keep_last=3)
    save(manager, 10)
    (tmp_path / "step-30").mkdir()  # e.g. copied by hand, never sealed
    with pytest.warns(UserWarning, match="no MANIFEST"):
        assert manager.latest() == tmp_path / "step-10"


def test_resume_never_refuses_to_overwrite(tmp_path):
    save(CheckpointFolders(tmp_path, keep_last=1), 10)
    with pytest.raises(FtdistError, match="checkpoint.resume=auto"):
        resolve_resume(tmp_path, "never")
    assert verify(tmp_path / "step-10") is None


def test_resume_from_explicit_bad_path(tmp_path):
    with pytest.raises(FtdistError, match="cannot be used: folder is missing"):
        resolve_resume(tmp_path, str(tmp_path / "nope"))


def test_resume_auto_without_checkpoints_starts_fresh(tmp_path):
    assert resolve_resume(tmp_path / "checkpoints", "auto") is None
