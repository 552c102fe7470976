"""`data:` what the model reads, and how it is cut into training sequences."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, field_validator

from ftdist.config.base import Section


class DataConfig(Section):
    """Training data. Paths are relative to the working directory; `builtin:NAME` names a file shipped in ftdist."""

    recipe: Literal["stream"] = "stream"
    """`stream`: one text file read as a single token stream, split by position into train/val, and sampled as
    random windows each step (the tiny SQL GPT paper's protocol)."""
    path: str = "builtin:tiny_sql_corpus.txt"
    """The text file (or, for other recipes, the data source)."""
    seq_len: PositiveInt = 32
    """Tokens per training sequence (the context length)."""
    val_fraction: float = 0.1
    """Share of the data held out for validation: the last part of the stream, by position."""

    @field_validator("val_fraction")
    @classmethod
    def _fraction_in_range(cls, value: float) -> float:
        if not 0.0 < value < 1.0:
            raise ValueError("data.val_fraction must be between 0 and 1 (exclusive), e.g. 0.1")
        return value
