"""Preemption: a signal sets a flag; all ranks agree at the next step boundary, save, and exit.

Slurm sends SIGUSR1 before the time limit (`#SBATCH --signal=USR1@N`) and SIGTERM on preemption. A
handler must not save by itself (other ranks may be mid-collective), so it only records the request; the
trainer all-reduces the flag between steps so every rank stops at the same step.
"""

from __future__ import annotations

import signal
import threading

import torch

from ftdist.env import any_rank

# Exit status of a run that stopped early to be requeued (EX_TEMPFAIL): launchers requeue on it.
PREEMPTED_EXIT_CODE = 75
# USR2 is submitit's time-limit signal (`--signal=USR2@N` in the scripts it submits).
SIGNALS = (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM)


class PreemptionFlag:
    """Set by SIGUSR1/SIGUSR2/SIGTERM; `should_stop()` is true on every rank once any rank received one."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.received: str | None = None
        self._previous = {}
        if threading.current_thread() is threading.main_thread():  # signals reach only the main thread
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame) -> None:
        self.received = signal.Signals(signum).name

    def should_stop(self) -> bool:
        return any_rank(self.received is not None, self.device)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
