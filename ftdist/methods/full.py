"""`method: pretrain` and `method: full`: every parameter trains."""

from __future__ import annotations

from torch import nn

from ftdist.config import RunConfig


def apply(model: nn.Module, config: RunConfig) -> nn.Module:
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model
