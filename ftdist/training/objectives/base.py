"""The interface of an objective (see `ftdist.training.objectives`)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

Batch = dict[str, torch.Tensor]


class Objective:
    """One micro-batch -> (loss sum over its units, metric sums); evaluation -> mean loss and metrics."""

    row_kind = "tokens"  # what the batch source must deliver: "tokens", "pairs" or "unpaired"

    def __init__(self, config, strategy, device: torch.device, head=None) -> None:
        self.config, self.strategy, self.device, self.head = config, strategy, device, head

    def count(self, batch: Batch) -> int:
        """The units of `batch` the loss is averaged over."""
        raise NotImplementedError

    def loss_sum(
        self, model: nn.Module, batch: Batch, split: str = "train"
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss summed over the batch's units, and each logged metric summed over them (detached).
        `split` names where the batch's rows come from (a precomputed reference is looked up by row)."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, batches: Iterable[Batch], split: str) -> dict[str, torch.Tensor]:
        """Mean `loss` (and the metrics) per unit over `batches` of `split`, as 0-d tensors on this rank."""
        totals: dict[str, torch.Tensor] = {}
        units = 0
        for batch in batches:
            loss, metrics = self.loss_sum(model, batch, split)
            units += self.count(batch)
            for key, value in {"loss": loss.detach(), **metrics}.items():
                totals[key] = totals[key] + value if key in totals else value
        return {key: value / max(1, units) for key, value in totals.items()}

    def before_training(self, trainer) -> None:
        """Work before the first step (the precomputed reference of DPO and KTO); collective."""

    def check_data(self, data, source: str) -> None:
        """Fail at start, naming the fix, if the batch source delivers rows this objective cannot read."""
        kind = getattr(data, "row_kind", "tokens")
        if kind != self.row_kind:
            from ftdist.errors import DataError

            wanted = {
                "tokens": "a token recipe (text, instruction, chat, ...)",
                "pairs": "prompt/chosen/rejected pairs (data.recipe: preference)",
                "unpaired": "prompt/completion/label rows (data.recipe: preference)",
            }[self.row_kind]
            raise DataError(
                f"{source}: method.name={self.config.method.name} trains on {wanted}, but the data gives {kind} rows; "
                "point data.path at such a file, or choose the method that fits the data"
            )


class RowObjective(Objective):
    """A preference objective: its units are rows (pairs, or unpaired examples), each batch carries their `index`."""

    def count(self, batch: Batch) -> int:
        return len(batch["index"])


class ReferencedObjective(RowObjective):
    """DPO and KTO: log-ratios against a reference (`ftdist.training.objectives.reference`), whose scores are the
    two columns `logps(model, batch)` returns; settings are `method.<name>`."""

    def __init__(self, config, strategy, device: torch.device, head=None) -> None:
        super().__init__(config, strategy, device, head)
        from ftdist.training.objectives.reference import build_reference

        self.settings = getattr(config.method, config.method.name)
        self.reference = build_reference(config.method, strategy, self.logps, device)

    def logps(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def before_training(self, trainer) -> None:
        self.reference.prepare(trainer)
