"""Is `output_dir` one folder on every node? Checked once, right after the process group forms.

Rank 0 writes a marker with a random token into the run folder; every rank reads it back. A node that does not
see it has its own local folder at that path (a node-local /tmp or scratch disk), and its ranks would write
checkpoint shards that no other node can read: the run would only fail later, at its first save or resume.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import torch
import torch.distributed as dist

from ftdist.errors import FtdistError

MARKER = ".ftdist-shared-check"
WAIT_S = 10.0
"""How long a rank looks for the marker: NFS may cache a lookup that missed for a few seconds."""


def check_shared_output_dir(run_dir: Path, rank: int, node_rank: int, device: torch.device) -> None:
    """Raise on every rank, naming the nodes that cannot see rank 0's marker, unless all of them see it."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    on = device if dist.get_backend() == "nccl" else torch.device("cpu")
    marker = Path(run_dir) / MARKER
    token = torch.tensor([secrets.randbits(62) if rank == 0 else 0], dtype=torch.int64, device=on)
    if rank == 0:
        marker.write_text(str(int(token.item())))
    dist.broadcast(token, 0)  # after rank 0's write
    seen = _sees(marker, str(int(token.item())))
    missing = torch.zeros(dist.get_world_size(), dtype=torch.int64, device=on)
    if not seen:
        missing[rank] = node_rank + 1
    dist.all_reduce(missing)
    if rank == 0:
        marker.unlink(missing_ok=True)
    nodes = sorted({int(n) - 1 for n in missing.tolist() if n})
    if nodes:
        here = f" (this is node {_node_name()}, node rank {node_rank})" if not seen else ""
        raise FtdistError(
            f"output_dir={run_dir} is not one shared folder: rank 0 wrote {MARKER} there, but the ranks on node "
            f"rank(s) {', '.join(map(str, nodes))} cannot see it{here}. Every node must mount output_dir at the "
            "same path (a shared filesystem such as NFS, Lustre or a shared /home), not a node-local disk like /tmp"
        )


def _sees(marker: Path, token: str) -> bool:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            if marker.read_text() == token:
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


def _node_name() -> str:
    return os.environ.get("SLURMD_NODENAME") or socket.gethostname()
