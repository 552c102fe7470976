"""How ranks agree: the few collectives the trainer's own bookkeeping needs, each written once.

One device rule for every one of them (`collective_device`): nccl reduces tensors on this rank's GPU, gloo on
the CPU. Outside a process group (one process) each is the identity, so callers never branch on the world size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist

from ftdist.errors import FtdistError

T = TypeVar("T")


def joined() -> bool:
    """Whether this process is in a process group (a 1-rank group counts)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if joined() else 0


def collective_device() -> torch.device:
    """Where a collective's tensor must live: this rank's GPU under nccl, else the CPU (gloo)."""
    if joined() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def any_rank(flag: bool) -> bool:
    """True on every rank if `flag` is true on any rank (an all-reduce of the flag; also a barrier)."""
    if not joined():
        return flag
    value = torch.tensor([1 if flag else 0], device=collective_device())
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over all ranks (gloo has no AVG: sum, then divide), as fp32 on the collective device."""
    value = value.detach().float().to(collective_device())
    if joined() and dist.get_world_size() > 1:
        dist.all_reduce(value)
        value /= dist.get_world_size()
    return value


def all_agree(action: Callable[[], T] | None, failure: Callable[[], Exception]) -> T | None:
    """Run `action` on this rank (None: nothing to do here), then learn whether it failed on any rank.

    The rank that failed raises its own error; every other rank raises `failure()`, so no rank is left waiting at
    a collective its failed peer will never reach. The agreement is an all-reduce, so it is also the barrier
    that orders what one rank wrote before what the others read."""
    error: BaseException | None = None
    result = None
    try:
        if action is not None:
            result = action()
    except Exception as caught:
        error = caught
    if any_rank(error is not None):
        if error is not None:
            raise error
        raise failure()
    return result


def on_rank0(action: Callable[[], T], what: str, error: type[Exception] = FtdistError) -> T | None:
    """Rank 0 does `action` (writes a file every rank will read) while the others wait; returns its result on
    rank 0 and None elsewhere. A failure on rank 0 is raised on every rank: there as itself, elsewhere as
    `error` saying `what` failed, so the waiting ranks stop instead of hanging."""
    return all_agree(
        action if rank() == 0 else None,
        lambda: error(f"rank 0 failed while {what} (its error is in rank 0's output)"),
    )
