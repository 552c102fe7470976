"""`strategy:` how the work is spread over processes and devices."""

from __future__ import annotations

from typing import Literal

from ftdist.config.base import NamedSection


class StrategyConfig(NamedSection):
    """The distribution strategy. Write `strategy: single` or `strategy: {name: single, ...}`."""

    name: Literal["single"] = "single"
    """`single`: one process on one device."""
