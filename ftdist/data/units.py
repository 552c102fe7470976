"""Units of work for `ftdist prepare`: the input cut into pieces whose boundaries do not depend on the ranks.

A unit is a run of consecutive input files (sorted, as the recipes read them) of at most `data.unit_mb`
megabytes. A larger file is cut into pieces of about `unit_mb`:
- a .txt/.md file of the `text` recipe at the next line end after each `unit_mb` bytes (a line is never split,
  and a piece decodes on its own, since a line end is one byte in UTF-8);
- a table (.json, .jsonl, .csv, .parquet) of a table-reading recipe into equal row ranges of its memory-mapped
  Arrow table (`datasets` parses the whole file once per machine and caches it, so every range is read with
  the whole file's schema, and a row keeps its line number in errors).
Other files are never cut (`code` and `headings` parse whole files; a .txt read as table rows would split
paragraphs), so such a file larger than a unit is a unit of its own. The cuts depend only on the files and
`unit_mb`: the same data gives the same units on one process or on many ranks.

While a unit is built, `reading(unit)` scopes the file finder (`ftdist.data.tables.data_files`) and the text
reader to the unit's files and byte ranges, so the recipes read a unit exactly as they read a whole set. A plan
of one unit is read with no scope at all: a set smaller than one unit takes exactly the code path it always did.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ftdist.config.data import RECIPE_COLUMNS, DataConfig
from ftdist.data.sources import BUILTIN_PREFIX, resolve_data_path

MB = 1_000_000
TEXT_SUFFIXES = (".txt", ".md")
_SCAN = 1 << 16


@dataclass(frozen=True)
class Part:
    """Bytes [start, end) of one file (start is 0 or just after a line end, end is the file's size or just after
    a line end), or with `rows`, rows [start, end) of its table."""

    path: Path
    start: int
    end: int
    size: int  # of the whole file, in bytes or rows
    rows: bool = False

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end == self.size

    @property
    def bytes(self) -> int:
        """What the part holds, in bytes (a row range: its share of the file's bytes)."""
        if not self.rows:
            return self.end - self.start
        return round(self.path.stat().st_size * (self.end - self.start) / max(1, self.size))

    def describe(self) -> list:
        return [str(self.path), self.start, self.end, "rows" if self.rows else "bytes"]


@dataclass(frozen=True)
class Unit:
    number: int
    parts: tuple[Part, ...]

    @property
    def bytes(self) -> int:
        return sum(part.bytes for part in self.parts)

    def describe(self) -> list:
        """What the unit reads, as JSON (a unit finished by an earlier attempt is reused only if it matches)."""
        return [part.describe() for part in self.parts]


def input_files(spec: str) -> list[Path]:
    """Every file `spec` names (itself, or every file under a folder, sorted); none for a hub id."""
    if not spec.startswith(BUILTIN_PREFIX) and not Path(spec).expanduser().exists():
        return []  # a hub id: read whole, as one unit
    path = resolve_data_path(spec)
    return [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())


def unit_bytes(config: DataConfig) -> int:
    return max(1, int(config.unit_mb * MB))


def plan_units(config: DataConfig) -> list[Unit]:
    """The units of `config`'s input, in order; always at least one."""
    from ftdist.data.tables import FORMATS  # it imports this module

    files = input_files(config.path)
    size = unit_bytes(config)
    text = config.recipe == "text" and all(
        p.suffix.lower() in TEXT_SUFFIXES for p in files if p.suffix.lower() in FORMATS
    )  # the text recipe reads .txt/.md itself (not through datasets) only when no table is among them
    tables = config.recipe in RECIPE_COLUMNS and not text  # recipes that read every file through `datasets`
    units: list[list[Part]] = []
    held = 0
    for path in files:
        suffix = path.suffix.lower()
        if text and suffix in TEXT_SUFFIXES:
            parts = _text_parts(path, size)
        elif tables and suffix in FORMATS and suffix not in TEXT_SUFFIXES:
            parts = _row_parts(path, size)
        else:
            parts = [Part(path, 0, path.stat().st_size, path.stat().st_size)]
        for part in parts:
            if not units or held + part.bytes > size:
                units.append([])
                held = 0
            units[-1].append(part)
            held += part.bytes
    return [Unit(number, tuple(parts)) for number, parts in enumerate(units)] or [Unit(0, ())]


def _text_parts(path: Path, size: int) -> list[Part]:
    """The file whole, or cut into pieces of at least `size` bytes, each ending after a line end."""
    total = path.stat().st_size
    parts, start = [], 0
    with open(path, "rb") as handle:
        while start < total:
            end = total if total - start <= size else _line_end_from(handle, start + size - 1, total)
            parts.append(Part(path, start, end, total))
            start = end
    return parts or [Part(path, 0, 0, 0)]


def _row_parts(path: Path, size: int) -> list[Part]:
    """The table whole, or (larger than `size` bytes) cut into as many equal row ranges as it has units' bytes."""
    total = path.stat().st_size
    if total <= size:
        return [Part(path, 0, total, total)]
    from ftdist.data.tables import load_file

    rows = len(load_file(path).rows)  # parsed once per machine; the recipe's own read hits datasets' cache
    step = -(-rows // -(-total // size))  # ceil(rows / ceil(total / size))
    return [Part(path, start, min(rows, start + step), rows, rows=True) for start in range(0, rows, step)]


def _line_end_from(handle, at: int, total: int) -> int:
    """The offset just after the first line end at or after `at` (or the file's end)."""
    handle.seek(at)
    while at < total:
        block = handle.read(_SCAN)
        found = block.find(b"\n")
        if found >= 0:
            return at + found + 1
        at += len(block)
    return total


_ACTIVE: contextvars.ContextVar[Unit | None] = contextvars.ContextVar("ftdist_prepare_unit", default=None)


@contextlib.contextmanager
def reading(unit: Unit | None) -> Iterator[None]:
    """Within the block, the file finder and the text reader see only `unit` (None: the whole set)."""
    token = _ACTIVE.set(unit)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def scoped_files(extensions: tuple[str, ...]) -> list[Path] | None:
    """The active unit's files with one of `extensions`, in order; None when no unit is active."""
    unit = _ACTIVE.get()
    if unit is None:
        return None
    return [part.path for part in unit.parts if part.path.suffix.lower() in extensions]


def scoped_rows(path: Path) -> Part | None:
    """The active unit's row range of the table `path`, when it is a range; None otherwise."""
    part = scoped_part(path)
    return part if part is not None and part.rows else None


def scoped_part(path: Path) -> Part | None:
    """The active unit's part of `path` when it is not the whole file; None otherwise."""
    unit = _ACTIVE.get()
    for part in unit.parts if unit is not None else ():
        if part.path == path and not part.whole:
            return part
    return None
