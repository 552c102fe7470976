"""The console view of a run (a progress bar with step, loss, tokens/s and ETA, and one-line event reports) and
the window of steps each logged training event summarises."""

from __future__ import annotations

from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressView:
    """A rich progress bar (when `tracking.progress` is on) and event lines, on rank 0 only."""

    def __init__(self, total: int, start: int, is_main: bool, show_bar: bool) -> None:
        self.console = Console(stderr=True)
        self.enabled = is_main
        self.start = start
        self.bar = None
        if is_main and show_bar:
            self.bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TextColumn("{task.fields[tps]} tok/s"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )
            self.task = self.bar.add_task("train", total=total, completed=start, loss="-", tps="-")
            self.bar.start()

    def update(self, step: int, loss: float | None = None, tokens_per_s: float | None = None) -> None:
        if self.bar is None:
            return
        fields = {}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        if tokens_per_s is not None:
            fields["tps"] = f"{tokens_per_s:,.0f}"
        self.bar.update(self.task, completed=step, **fields)

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class LogWindow:
    """The steps since the last logged event: their loss sum, count, tokens and seconds.

    The logged `loss` is the mean over this window (as HF Trainer logs it, so curves are as smooth as the
    peers'), and `tokens_per_s` the window's tokens over its seconds. The sum stays a device tensor, so adding
    a step never waits for the device. It is part of the resumable state: a run resumed mid-window logs the
    same mean it would have logged uninterrupted.
    """

    def __init__(self) -> None:
        self.loss_sum: torch.Tensor | None = None
        self.steps = 0
        self.tokens = 0
        self.seconds = 0.0

    def add(self, loss: torch.Tensor, tokens: int, seconds: float) -> None:
        loss = loss.detach().float()
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        self.steps += 1
        self.tokens += tokens
        self.seconds += seconds

    def take(self) -> tuple[torch.Tensor, float]:
        """(mean loss tensor, tokens/s) of the window, which starts afresh."""
        mean = self.loss_sum / max(1, self.steps)
        rate = self.tokens / max(self.seconds, 1e-9)
        self.__init__()
        return mean, rate

    def state_dict(self) -> dict[str, Any]:
        total = None if self.loss_sum is None else self.loss_sum.detach().cpu()
        return {"loss_sum": total, "steps": self.steps, "tokens": self.tokens, "seconds": self.seconds}

    def load_state_dict(self, state: dict[str, Any] | None, device: torch.device) -> None:
        self.__init__()
        if state:  # checkpoints from before the window was saved have none: start afresh
            self.loss_sum = None if state["loss_sum"] is None else state["loss_sum"].to(device)
            self.steps, self.tokens, self.seconds = state["steps"], state["tokens"], state["seconds"]
