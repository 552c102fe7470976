"""Is `output_dir` one folder on every node? One marker routine, used by the trainer and by `ftdist doctor`.

A rank publishes a marker the way checkpoints are published (write, fsync, rename) with its hash beside it,
and the other ranks read it back. A node that cannot read it has its own local folder at that path (a
node-local /tmp or scratch disk): its ranks would write checkpoint shards that no other node can read, and the
run would only fail later, at its first save or resume.

The trainer checks once, right after the process group forms: rank 0 publishes a small marker and every rank
reads it. Doctor has every rank publish a checkpoint-sized marker, reads all of them and reports the write rate.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ftdist.distributed.collectives import collective_device, joined, on_rank0
from ftdist.errors import FtdistError

MARKER_DIR = ".ftdist-shared-check"
WAIT_S = 10.0
"""How long a rank looks for a marker: NFS may cache a lookup that missed for a few seconds."""


def publish_marker(folder: Path, rank: int, payload: bytes) -> float:
    """Write this rank's marker as checkpoints are written (whole file, fsync, rename); seconds taken.

    Raises OSError when the folder cannot be written."""
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    partial = folder / f"rank{rank}.partial"
    with open(partial, "wb") as handle:
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, folder / f"rank{rank}.marker")
    seconds = time.perf_counter() - started
    (folder / f"rank{rank}.sha").write_text(hashlib.sha256(payload).hexdigest())
    return seconds


def unseen_markers(folder: Path, ranks: list[int], wait_s: float = 0.0) -> list[str]:
    """The ranks among `ranks` whose marker this process cannot read back intact (after up to `wait_s`)."""
    deadline = time.monotonic() + wait_s
    while True:
        unseen = [problem for rank in ranks if (problem := _marker_problem(folder, rank))]
        if not unseen or time.monotonic() >= deadline:
            return unseen
        time.sleep(0.5)


def withdraw_marker(folder: Path, rank: int) -> None:
    for name in (f"rank{rank}.marker", f"rank{rank}.sha", f"rank{rank}.partial"):
        (folder / name).unlink(missing_ok=True)


def _marker_problem(folder: Path, rank: int) -> str:
    try:
        marker, digest = (folder / f"rank{rank}.marker").read_bytes(), (folder / f"rank{rank}.sha").read_text()
    except OSError:
        return str(rank)
    return "" if hashlib.sha256(marker).hexdigest() == digest else f"{rank} (content differs)"


def check_shared_output_dir(run_dir: Path, rank: int, node_rank: int) -> None:
    """Raise on every rank, naming the nodes that cannot see rank 0's marker, unless all of them see it."""
    if not joined() or dist.get_world_size() == 1:
        return
    folder = Path(run_dir) / MARKER_DIR
    on_rank0(lambda: publish_marker(folder, 0, secrets.token_bytes(64)), f"writing a marker in {folder}")
    seen = rank == 0 or not unseen_markers(folder, [0], WAIT_S)
    missing = torch.zeros(dist.get_world_size(), dtype=torch.int64, device=collective_device())
    if not seen:
        missing[rank] = node_rank + 1
    dist.all_reduce(missing)  # also the barrier before rank 0 withdraws what the others read
    if rank == 0:
        withdraw_marker(folder, 0)
        with contextlib.suppress(OSError):
            folder.rmdir()
    nodes = sorted({int(n) - 1 for n in missing.tolist() if n})
    if nodes:
        here = f" (this is node {_node_name()}, node rank {node_rank})" if not seen else ""
        raise FtdistError(
            f"output_dir={run_dir} is not one shared folder: rank 0 wrote a marker in {MARKER_DIR} there, but the "
            f"ranks on node rank(s) {', '.join(map(str, nodes))} cannot see it{here}. Every node must mount "
            "output_dir at the same path (a shared filesystem such as NFS, Lustre or a shared /home), not a "
            "node-local disk like /tmp"
        )


def _node_name() -> str:
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()
