"""Evaluate a model folder or a run with a list of task configs: the code `ftdist eval` and the trainer share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ftdist.config.eval import EvalTaskConfig
from ftdist.errors import FtdistError
from ftdist.eval.runner import run_task
from ftdist.eval.tasks import EvalContext
from ftdist.eval.tasks.base import Row
from ftdist.run_folder import RunFolder

Results = dict[str, tuple[dict[str, Any], list[Row]]]


def load_model_for_eval(run_or_model: str | Path, device: torch.device) -> tuple[nn.Module, PreTrainedTokenizerBase]:
    """A run folder's final model (adapters on their base), a checkpoint, or an HF folder."""
    from ftdist.generate import load_for_generation

    path = Path(run_or_model)
    if not path.exists():
        raise FtdistError(f"{run_or_model} does not exist; pass a run folder (runs/NAME) or a model folder")
    run = RunFolder(path)
    no_model = not (run.final.exists() or run.checkpoints.exists() or (path / "config.json").exists())
    if run.config.exists() and no_model:
        raise FtdistError(
            f"{path} is a run folder with no model yet (no final/ and no checkpoints/): the run did not get to "
            "save one. Train it (ftdist train) or pass the model folder it started from"
        )
    return load_for_generation(path, device)


def run_dir_of(run_or_model: str | Path) -> Path | None:
    """The run folder when the argument is one (or a checkpoint/final folder inside one)."""
    run = RunFolder.of(Path(run_or_model).resolve())
    return run.root if run else None


def evaluate(
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    tasks: list[EvalTaskConfig],
    device: torch.device,
    run_dir: Path | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
    run_config: Any = None,
) -> Results:
    """Every task's (result, rows), in order."""
    context = EvalContext(model, tokenizer, device, run_dir, run_config)
    return {task.name: run_task(task, context, rank, world_size, progress) for task in tasks}


def format_metrics(results: Results) -> str:
    lines = []
    for label, (result, _) in results.items():
        values = ", ".join(f"{k} {_number(v)}" for k, v in result["metrics"].items())
        lines.append(f"{label} ({result['n']} items, {result['wall_s']:.1f} s): {values}")
    return "\n".join(lines)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() and abs(value) >= 10 else f"{value:.4f}"
