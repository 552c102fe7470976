"""What the loss is: next-token cross-entropy (`sft`), or a preference objective (`dpo`, `kto`, `reward`).

An objective turns one micro-batch into a loss *sum* over its units (tokens for `sft`, rows for the preference
objectives) plus the sums of the metrics it logs; the loop divides by the units of the whole step, so
gradient accumulation weights every unit equally however they fall into micro-batches. `method.objective`
names it; a new objective is a new module and one line here, never a branch in the trainer.
"""

from __future__ import annotations

from ftdist.registry import Registry
from ftdist.training.objectives.base import Objective

_HERE = "ftdist.training.objectives"
REGISTRY = Registry(
    sft=f"{_HERE}.sft:TokenObjective",
    dpo=f"{_HERE}.dpo:DpoObjective",
    kto=f"{_HERE}.kto:KtoObjective",
    reward=f"{_HERE}.reward:RewardObjective",
)


def build_objective(config, strategy, device, head=None) -> Objective:
    """The objective of `config.method` (`head`: the chunked loss head, if installed)."""
    return REGISTRY.load(config.method.objective)(config, strategy, device, head)


__all__ = ["REGISTRY", "Objective", "build_objective"]
