"""Units of work for `ftdist prepare`: the input cut into pieces whose boundaries do not depend on the ranks.

A unit is a run of consecutive input files (sorted, as the recipes read them) of at most `data.unit_mb`
megabytes; a .txt/.md file of the `text` recipe larger than that is cut into pieces of `unit_mb` that end at
the next line end (a line is never split, and a piece decodes on its own, since a line end is one byte in
UTF-8). Other files are never cut (a table is read whole through `datasets`; `code` and `headings` parse
whole files), so such a file larger than a unit is a unit of its own. The cuts depend only on the files'
bytes and `unit_mb`: the same data gives the same units on one process or on many ranks.

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

from ftdist.config.data import DataConfig
from ftdist.data.sources import BUILTIN_PREFIX, resolve_data_path

MB = 1_000_000
TEXT_SUFFIXES = (".txt", ".md")
_SCAN = 1 << 16


@dataclass(frozen=True)
class Part:
    """Bytes [start, end) of one file; start is 0 or just after a line end, end is the file's size or just
    after a line end."""

    path: Path
    start: int
    end: int
    size: int  # of the whole file

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.end == self.size

    def describe(self) -> list:
        return [str(self.path), self.start, self.end]


@dataclass(frozen=True)
class Unit:
    number: int
    parts: tuple[Part, ...]

    @property
    def bytes(self) -> int:
        return sum(part.end - part.start for part in self.parts)

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
    cuttable = config.recipe == "text" and all(
        p.suffix.lower() in TEXT_SUFFIXES for p in files if p.suffix.lower() in FORMATS
    )  # the text recipe reads .txt/.md itself (not through datasets) only when no table is among them
    units: list[list[Part]] = []
    held = 0
    for path in files:
        for part in _parts(path, size if cuttable and path.suffix.lower() in TEXT_SUFFIXES else None):
            length = part.end - part.start
            if not units or (units[-1] and held + length > size):
                units.append([])
                held = 0
            units[-1].append(part)
            held += length
    return [Unit(number, tuple(parts)) for number, parts in enumerate(units)] or [Unit(0, ())]


def _parts(path: Path, size: int | None) -> Iterator[Part]:
    """The file whole, or (`size` set) cut into pieces of at least `size` bytes, each ending after a line end."""
    total = path.stat().st_size
    if size is None or total <= size:
        yield Part(path, 0, total, total)
        return
    start = 0
    with open(path, "rb") as handle:
        while start < total:
            end = _line_end_from(handle, start + size - 1, total)
            yield Part(path, start, end, total)
            start = end


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


def scoped_part(path: Path) -> Part | None:
    """The active unit's part of `path` when it is not the whole file; None otherwise."""
    unit = _ACTIVE.get()
    for part in unit.parts if unit is not None else ():
        if part.path == path and not part.whole:
            return part
    return None
