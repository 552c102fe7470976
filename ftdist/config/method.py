"""`method:` how the weights are trained: from scratch, all of them, or through adapters."""

from __future__ import annotations

from typing import Literal

from ftdist.config.base import NamedSection


class MethodConfig(NamedSection):
    """The training method. Write `method: pretrain` or `method: {name: pretrain}`."""

    name: Literal["pretrain", "full"] = "pretrain"
    """`pretrain` and `full` both train every weight; `pretrain` starts from `model.scratch` (random init),
    `full` from `model.path` (or, for tests, from a scratch model)."""
