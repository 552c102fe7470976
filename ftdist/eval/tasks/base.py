"""The task interface every evaluation implements, and the shared shape of generation-based tasks.

A task turns its config into a list of items, evaluates a batch of items into per-example rows, and sums
rows up into metrics. The runner (`ftdist.eval.runner`) owns batching, the split across ranks, gathering and
progress, so a task never sees more than one batch and never knows how many processes there are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ftdist.config.eval import EvalTaskConfig
from ftdist.generate import generate_batch
from ftdist.responses import cut_response

Row = dict[str, Any]


@dataclass
class EvalContext:
    """What a task may use: the model under evaluation, its tokenizer, the device and (for a run) its folder."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    device: torch.device
    run_dir: Path | None = None
    run_config: Any = None  # the run's RunConfig, when known (the trainer passes its own; else config.yaml)


class Task(ABC):
    """One evaluation. Subclasses set `name` and implement `items`, `run_batch` and `summarize`."""

    name: str = ""

    def __init__(self, config: EvalTaskConfig, context: EvalContext) -> None:
        self.config = config
        self.context = context

    @abstractmethod
    def items(self) -> list[dict[str, Any]]:
        """Everything to evaluate, in a fixed order (the first `limit` when set)."""

    @abstractmethod
    def run_batch(self, items: list[dict[str, Any]]) -> list[Row]:
        """One row per item: what the model did and how it scored."""

    @abstractmethod
    def summarize(self, rows: list[Row]) -> dict[str, float]:
        """The task's metrics from every row (all ranks' rows, in item order)."""

    def size(self, item: dict[str, Any]) -> int:
        """Sort key for batching: items of similar size share a batch and waste less padding."""
        return 0

    def settings(self) -> dict[str, Any]:
        """Everything that changes the numbers; recorded with the results and compared by `ftdist compare`."""
        return self.config.model_dump(exclude={"label"})

    def limited(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return items[: self.config.limit] if self.config.limit else items


class GenerationTask(Task):
    """A task that prompts the model and scores each generated response."""

    @abstractmethod
    def prompt(self, item: dict[str, Any]) -> str: ...

    @abstractmethod
    def score(self, item: dict[str, Any], response: str) -> Row:
        """The row for one item given the model's (cut) response."""

    def size(self, item: dict[str, Any]) -> int:
        return len(self.context.tokenizer(self.prompt(item), add_special_tokens=False)["input_ids"])

    def generate(self, items: list[dict[str, Any]]) -> list[str]:
        prompts = [self.prompt(item) for item in items]
        context, settings, stop = self.context, self.config.generation(), self.config.stop
        completions = generate_batch(context.model, context.tokenizer, prompts, settings, context.device, stop)
        return [cut_response(text, stop) for text in completions]

    def run_batch(self, items: list[dict[str, Any]]) -> list[Row]:
        return [self.score(item, response) for item, response in zip(items, self.generate(items))]


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
