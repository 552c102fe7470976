"""The one marker routine behind the trainer's shared-output_dir check and `ftdist doctor`'s, on real files.

The two-node case (a folder one node cannot see) runs on the CI Slurm cluster in test_slurm_two_nodes.py."""

from __future__ import annotations

from ftdist.distributed.shared_dir import publish_marker, unseen_markers, withdraw_marker


def test_published_markers_are_seen_and_withdrawn(tmp_path):
    folder = tmp_path / "run" / ".check"
    for rank in range(2):
        assert publish_marker(folder, rank, bytes([rank]) * 1024) >= 0
    assert unseen_markers(folder, [0, 1]) == []
    withdraw_marker(folder, 1)
    assert unseen_markers(folder, [0, 1]) == ["1"]
    assert sorted(p.name for p in folder.iterdir()) == ["rank0.marker", "rank0.sha"]


def test_a_marker_that_changed_is_named(tmp_path):
    publish_marker(tmp_path, 0, b"x" * 4096)
    (tmp_path / "rank0.marker").write_bytes(b"y" * 4096)  # another node's stale copy at the same path
    assert unseen_markers(tmp_path, [0]) == ["0 (content differs)"]


def test_a_missing_marker_is_waited_for_then_named(tmp_path):
    # NFS can miss a fresh file for a few seconds: the wait is bounded, then the rank is named.
    assert unseen_markers(tmp_path, [3], wait_s=1.0) == ["3"]
