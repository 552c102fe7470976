"""Preemption: a signal sets a flag; all ranks agree at a step boundary, save, and exit.

Slurm sends SIGUSR1 before the time limit (`#SBATCH --signal=USR1@N`) and SIGTERM on preemption. A
handler must not save by itself (other ranks may be mid-collective), so it only records the request; the
ranks then agree between steps, so every rank stops at the same step.

The agreement must not cost a per-step device sync (ftdist/training/finite.py says why the loop has none): each
step boundary starts a non-blocking all-reduce of the flag on a CPU (gloo) group and reads the one started at
the previous boundary, which finished long ago. So a signal stops the run one step later than a blocking
check would, and the GPU never waits for the host.
"""

from __future__ import annotations

import signal
import threading

import torch
import torch.distributed as dist

# Exit status of a run that stopped early to be requeued (EX_TEMPFAIL): launchers requeue on it.
PREEMPTED_EXIT_CODE = 75
# USR2 is submitit's time-limit signal (`--signal=USR2@N` in the scripts it submits).
SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class PreemptionFlag:
    """Set by SIGUSR1/SIGUSR2/SIGTERM; `should_stop()` is true on every rank, at the same step, once any rank
    received one."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous = {}
        self._pending: tuple[torch.Tensor, dist.Work] | None = None
        self._group = _cpu_group()
        if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum).name

    def should_stop(self) -> bool:
        if self._group is None:
            return self.received is not None
        agreed = self._settle()  # the previous boundary's agreement: complete, so this does not block
        flag = torch.tensor([0 if self.received is None else 1], dtype=torch.int32)
        work = dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group, async_op=True)
        self._pending = (flag, work)
        return agreed

    def _settle(self) -> bool:
        if self._pending is None:
            return False
        flag, work = self._pending
        self._pending = None
        work.wait()
        return bool(flag.item())

    def restore(self) -> None:
        """Finish the agreement in flight (no collective may outlive the process group) and put the previous
        signal handlers back."""
        if self._pending is not None:
            self._settle()
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _cpu_group() -> dist.ProcessGroup | None:
    """A gloo group for the flag (the default group when it is gloo already); None in a single process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    return dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
