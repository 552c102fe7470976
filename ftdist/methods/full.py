"""`method: pretrain` and `method: full`: every parameter trains, and a checkpoint holds the whole model."""

from __future__ import annotations

from torch import nn

from ftdist.methods.base import Method


class FullMethod(Method):
    @classmethod
    def apply(cls, model: nn.Module, config) -> nn.Module:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
