"""The console view of a run (a progress bar with step, loss, tokens/s and ETA, and one-line event reports) and
the window of steps each logged training event summarises."""

from __future__ import annotations

import datetime
import math
import sys
import time
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class ProgressView:
    """On rank 0: a rich progress bar on a terminal, or one plain line per logged step in batch mode (stdout not
    a terminal: Slurm, nohup, CI; or `tracking.progress: false`), and one-line event reports either way.

    The plain line is what HF Trainer, axolotl and torchtitan print: step/max, loss, lr, grad norm, tokens/s,
    peak memory and ETA, flushed at once so a job's log shows progress while it runs."""

    def __init__(self, total: int, start: int, is_main: bool, show_bar: bool) -> None:
        self.plain = is_main and not (show_bar and sys.stdout.isatty())
        self.console = Console(stderr=True, soft_wrap=self.plain)  # a log file gets whole lines, not 80 columns
        self.enabled = is_main
        self.start = start
        self.total = total
        self.started: float | None = None  # at the first step: the ETA leaves out loading the model and data
        self.started_at = start
        self.bar = None
        if is_main and not self.plain:
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

    def update(
        self,
        step: int,
        loss: float | None = None,
        tokens_per_s: float | None = None,
        lr: float | None = None,
        grad_norm: float | None = None,
        metrics: dict[str, float] | None = None,
    ) -> None:
        if self.started is None:
            self.started, self.started_at = time.monotonic(), step
        if self.plain and loss is not None:
            print(self.line(step, loss, tokens_per_s, lr, grad_norm, metrics), flush=True)
        if self.bar is None:
            return
        fields = {}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        if tokens_per_s is not None:
            fields["tps"] = f"{tokens_per_s:,.0f}"
        self.bar.update(self.task, completed=step, **fields)

    def line(self, step: int, loss: float, tokens_per_s=None, lr=None, grad_norm=None, metrics=None) -> str:
        """`step 200/800  loss 1.2345  lr 3.00e-04  grad norm 0.871  12,345 tok/s  peak 1.2 GiB  ETA 0:05:12`;
        a preference run adds its pair accuracy and reward margin after the loss (`accuracy 0.750  margin 0.412`)."""
        parts = [f"step {step}/{self.total}", f"loss {loss:.4f}"]
        parts += [f"{key} {(metrics or {})[key]:.3f}" for key in SHOWN_METRICS if key in (metrics or {})]
        if lr is not None:
            parts.append(f"lr {lr:.2e}")
        if grad_norm is not None and math.isfinite(grad_norm):
            parts.append(f"grad norm {grad_norm:.3f}")
        if tokens_per_s is not None:
            parts.append(f"{tokens_per_s:,.0f} tok/s")
        parts.append(f"peak {peak_memory_bytes() / 2**30:.2f} GiB")
        done = step - self.started_at
        if done > 0 and self.started is not None:
            left = (time.monotonic() - self.started) / done * (self.total - step)
            parts.append(f"ETA {datetime.timedelta(seconds=round(left))}")
        return "  ".join(parts)

    def say(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


SHOWN_METRICS = ("accuracy", "margin")  # of an objective's metrics, the ones the progress line shows


def peak_memory_bytes() -> int:
    """The peak this process has held: CUDA's allocator peak on a GPU, else the process's peak RSS."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated()
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


class LogWindow:
    """The steps since the last logged event: their loss sum, count, tokens and seconds.

    The logged `loss` is the mean over this window (as HF Trainer logs it, so curves are as smooth as the
    peers'), and `tokens_per_s` the window's tokens over its seconds. The sum stays a device tensor, so adding
    a step never waits for the device. It is part of the resumable state: a run resumed mid-window logs the
    same mean it would have logged uninterrupted.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._reset()

    def _reset(self) -> None:
        self.loss_sum: torch.Tensor | None = None
        self.metric_sums: dict[str, torch.Tensor] = {}  # an objective's own metrics (DPO rewards, accuracy)
        self.steps = 0
        self.tokens = 0
        self.seconds = 0.0

    def add(self, loss: torch.Tensor, tokens: int, seconds: float) -> None:
        loss = loss.detach().float()
        self.loss_sum = loss if self.loss_sum is None else self.loss_sum + loss
        self.steps += 1
        self.tokens += tokens
        self.seconds += seconds

    def add_metrics(self, metrics: dict[str, torch.Tensor]) -> None:
        """One step's metrics (means over its units), summed over the window like the loss."""
        for key, value in metrics.items():
            value = value.detach().float()
            self.metric_sums[key] = self.metric_sums[key] + value if key in self.metric_sums else value

    def metric_means(self) -> dict[str, torch.Tensor]:
        """The window's mean of each metric (call before `take`, which starts the window afresh)."""
        return {key: value / max(1, self.steps) for key, value in sorted(self.metric_sums.items())}

    def take(self) -> tuple[torch.Tensor, float]:
        """(mean loss tensor, tokens/s) of the window, which starts afresh."""
        mean = self.loss_sum / max(1, self.steps)
        rate = self.tokens / max(self.seconds, 1e-9)
        self._reset()
        return mean, rate

    def state_dict(self) -> dict[str, Any]:
        total = None if self.loss_sum is None else self.loss_sum.detach().cpu()
        metrics = {key: value.detach().cpu() for key, value in self.metric_sums.items()}
        return {
            "loss_sum": total,
            "steps": self.steps,
            "tokens": self.tokens,
            "seconds": self.seconds,
            "metric_sums": metrics,
        }

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        self._reset()
        if state:  # checkpoints from before the window was saved have none: start afresh
            self.loss_sum = None if state["loss_sum"] is None else state["loss_sum"].to(self.device)
            self.steps, self.tokens, self.seconds = state["steps"], state["tokens"], state["seconds"]
            self.metric_sums = {key: value.to(self.device) for key, value in state.get("metric_sums", {}).items()}
