"""Run one task: batch its items, split the batches across ranks, gather the rows on every rank, sum up.

The split is by whole batches (batch k goes to rank k mod world size) over one fixed, length-sorted order, so
every batch holds the same items with the same padding however many ranks there are: the gathered rows, and
therefore the metrics, equal a single process's.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

import torch.distributed as dist
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ftdist.config.eval import EvalTaskConfig
from ftdist.eval.tasks import TASKS, EvalContext
from ftdist.eval.tasks.base import Row


def run_task(
    config: EvalTaskConfig, context: EvalContext, rank: int = 0, world_size: int = 1, progress: bool = True
) -> tuple[dict[str, Any], list[Row]]:
    """(result, rows): the metrics with the settings that produced them, and one row per item in item order."""
    task = TASKS[config.task](config, context)
    started = time.perf_counter()
    was_training = context.model.training
    context.model.eval()
    items = task.items()
    order = sorted(range(len(items)), key=lambda i: task.size(items[i]))  # stable: ties keep file order
    batches = [order[k : k + config.batch_size] for k in range(0, len(order), config.batch_size)]
    mine = batches[rank::world_size]
    rows: list[Row] = []
    with _progress(config.name, sum(len(b) for b in mine), progress and rank == 0) as advance:
        for batch in mine:
            for index, row in zip(batch, task.run_batch([items[i] for i in batch])):
                rows.append({"index": index, **row})
            advance(len(batch))
    if world_size > 1:
        shares: list[list[Row] | None] = [None] * world_size
        dist.all_gather_object(shares, rows)
        rows = [row for share in shares for row in share or []]
    rows.sort(key=lambda row: row["index"])
    if was_training:
        context.model.train()
    seconds = time.perf_counter() - started
    result = {
        "task": config.task,
        "label": config.name,
        "metrics": task.summarize(rows),
        "settings": task.settings(),
        "n": len(rows),
        "world_size": world_size,
        "wall_s": round(seconds, 3),
        "items_per_s": round(len(rows) / max(seconds, 1e-9), 3),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return result, rows


class _progress:
    """A rich bar with ETA on rank 0 (to stderr), a no-op elsewhere."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.bar = None
        if enabled and total:
            self.bar = Progress(
                TextColumn(f"[bold]eval {label}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
            )
            self.task = self.bar.add_task(label, total=total)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self.advance

    def advance(self, count: int) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, count)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()
