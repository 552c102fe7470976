"""Where the processes of a Slurm job meet: the head node and the port, derived from the job alone.

Every task (and the sbatch script, through `python -m ftdist.distributed.rendezvous`) computes the same answer without
talking to the others, so the formula exists once. This module imports no torch: the batch script runs it.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys

from ftdist.errors import FtdistError

__all__ = ["check_port_free", "check_resolves", "first_slurm_host", "slurm_rendezvous"]


def slurm_rendezvous(environ: dict[str, str]) -> dict[str, str]:
    """MASTER_ADDR/MASTER_PORT for a Slurm job: the first host of the job's nodes, a port from the job id.

    Every task computes the same answer without talking to the others. The port lies in 20000-39999 so two
    jobs sharing a node rarely collide; a requeued job keeps its id and so its port.
    """
    result = {}
    nodelist = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if nodelist:
        result["MASTER_ADDR"] = check_resolves(first_slurm_host(nodelist), nodelist)
    if environ.get("SLURM_JOB_ID", "").isdigit():
        result["MASTER_PORT"] = str(20000 + int(environ["SLURM_JOB_ID"]) % 20000)
    return result


def check_resolves(head: str, nodelist: str) -> str:
    """`head` if this host can resolve it; else an error that names it and what to check."""
    try:
        socket.getaddrinfo(head, None)
    except OSError as error:
        raise FtdistError(
            f"the head node name {head!r} (first of SLURM_JOB_NODELIST={nodelist}) does not resolve on "
            f"{socket.gethostname()} ({error.strerror or error}); the head's Slurm node name must be a host name "
            f"every node resolves: check DNS or /etc/hosts on each node (`getent hosts {head}`)"
        ) from None
    return head


def check_port_free(port: int, how_to_change: str) -> None:
    """Raise a clear error if `port` cannot be listened on here (the head node, where the rendezvous store runs).

    torchrun's own message for this is a TCPStore traceback from every worker after its timeout; this check
    runs before torchrun starts. SO_REUSEADDR as the store sets it, so a port in TIME_WAIT counts as free.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as error:
            if error.errno not in (errno.EADDRINUSE, errno.EACCES):
                raise
            why = "already in use (another job or rendezvous?)" if error.errno == errno.EADDRINUSE else "not allowed"
            raise FtdistError(
                f"rendezvous port {port} on this node is {why}: the head node listens on it for the other "
                f"processes; {how_to_change}"
            ) from None


def first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm node list such as `gpu[01-04,07]`, expanded by Slurm itself.

    `scontrol show hostnames` is the only parser that knows every form Slurm accepts; a plain name
    needs no expansion, so it is returned as is when scontrol is not on PATH.
    """
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as error:
        if "[" not in nodelist and "," not in nodelist:
            return nodelist
        raise FtdistError(
            f"cannot expand SLURM_JOB_NODELIST={nodelist} to find the head node ({error}); "
            "run inside a Slurm job with scontrol on PATH, or set MASTER_ADDR and MASTER_PORT"
        ) from None
    return out.split()[0]


if __name__ == "__main__":  # `python -m ftdist.distributed.rendezvous` in a job: prints "HEAD PORT"
    try:
        found = slurm_rendezvous(os.environ)
        print(found["MASTER_ADDR"], found["MASTER_PORT"])
    except FtdistError as error:
        print(f"ftdist rendezvous: error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyError as error:
        print(
            f"ftdist rendezvous: error: {error} unset; run inside a Slurm job (SLURM_JOB_NODELIST, SLURM_JOB_ID)",
            file=sys.stderr,
        )
        sys.exit(2)
