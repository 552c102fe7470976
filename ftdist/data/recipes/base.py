"""What recipes produce, and the one helper they share for reading a mapped column."""

from __future__ import annotations

from dataclasses import dataclass

from ftdist.data.tables import Table
from ftdist.errors import DataError


@dataclass
class Example:
    """One training example as text segments; only segments with `trained=True` count in the loss."""

    segments: list[tuple[str, bool]]
    origin: str  # "file line N": where it came from, for error messages
    eos: bool = True  # append EOS (when data.add_eos); chat templates write their own end-of-turn tokens


@dataclass
class PreferenceExample:
    """One preference record: a masked prompt and its responses, each a list of (text, trained) segments.

    Pairs hold two responses (chosen, rejected) and `desirable=None`; an unpaired (KTO) example holds one
    response (its completion) and `desirable` 1 or 0. It stays one item through tokenizing and writing."""

    prompt: str
    responses: list[list[tuple[str, bool]]]
    origin: str
    desirable: int | None = None
    eos: bool = True  # append EOS to each response (when data.add_eos); chat templates end turns themselves

    @property
    def segments(self) -> list[tuple[str, bool]]:
        """Every text of the record (for the char vocabulary and batch sizes)."""
        return [(self.prompt, False), *(segment for response in self.responses for segment in response)]


@dataclass
class Skipped:
    """A record left out on purpose (e.g. a function without a docstring), counted by reason in the card."""

    origin: str
    reason: str


def text_field(table: Table, index: int, row: dict, field: str, column: str, required: bool = True) -> str:
    """The string in `row[column]`; missing or empty required values are errors naming the row."""
    value = row.get(column)
    if value is None:
        value = ""
    if not isinstance(value, str):
        if isinstance(value, int | float):
            value = str(value)
        else:
            raise DataError(
                f"{table.where(index)}: column {column!r} (data.columns.{field}) holds a {type(value).__name__}, "
                "not text"
            )
    if required and not value.strip():
        raise DataError(
            f"{table.where(index)}: column {column!r} (data.columns.{field}) is empty; fix or remove this row "
            "(an empty field would become an example with nothing to learn)"
        )
    return value
