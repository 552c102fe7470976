"""Read tabular data (json, jsonl, csv, parquet, text; a file, a folder or a hub id) through `datasets`,
keeping where each row came from so that a bad row can be named by file and line.

`datasets` does the parsing; this module adds what its errors lack: the file and line of malformed JSONL,
the columns that *are* present when a mapped one is missing, and a clear message for an empty file.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ftdist.data.sources import BUILTIN_PREFIX, check_utf8, resolve_data_path
from ftdist.data.units import scoped_files, scoped_rows
from ftdist.errors import DataError

FORMATS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".txt": "text", ".md": "text"}
HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class Rows:
    """A table's rows as dicts, read from `datasets`' memory-mapped Arrow table a batch at a time, so that a
    large file is never a list of Python dicts (`Dataset.to_list()` costs about 100 bytes of RAM per byte)."""

    def __init__(self, dataset, batch: int = 1000) -> None:
        self.dataset, self.batch = dataset, batch

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[dict]:
        for columns in self.dataset.iter(batch_size=self.batch):
            names = list(columns)
            yield from (dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True))


@dataclass
class Table:
    """The rows of one file, as dicts, with a way to name row `i` in an error message."""

    name: str
    rows: Rows | list[dict]
    columns: list[str]
    jsonl: Path | None = field(default=None, repr=False)  # JSONL: the file, whose line numbers name rows
    first_row: int = 0  # rows[0] is this row of the file (a unit's row range of a larger table)

    def where(self, index: int) -> str:
        index += self.first_row
        if self.jsonl is not None:  # counted only when an error needs it
            return f"{self.name} line {_jsonl_line(self.jsonl, index)}"
        return f"{self.name} row {index + 1}"

    def require(self, key: str, column: str) -> None:
        """Fail, listing the columns present, if `column` is missing."""
        if column not in self.columns:
            raise DataError(
                f"{self.name}: column {column!r} (for {key}) is missing; the columns present are "
                f"{', '.join(self.columns) or 'none'}. Map it with data.columns, e.g. data.columns.{key}=<column>"
            )


def data_files(spec: str, extensions: tuple[str, ...], key: str = "data.path") -> list[Path]:
    """The files a `data.path` names: itself, or every file under a folder whose ending is in `extensions`.
    While `ftdist prepare` builds one unit of a larger set (`ftdist.data.units`), only that unit's files."""
    scoped = scoped_files(extensions)
    if scoped is not None:
        return scoped
    path = resolve_data_path(spec, key)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in extensions)
    if not files:
        raise DataError(f"{key}={spec} is a folder with no {'/'.join(extensions)} files; point it at your data")
    return files


def load_tables(spec: str, key: str = "data.path") -> Iterator[Table]:
    """Each table file under `spec` (or the hub dataset `spec`), in sorted order."""
    local = spec.startswith(BUILTIN_PREFIX) or Path(spec).expanduser().exists()
    if not local and HUB_ID.match(spec):
        yield _load_hub(spec)
        return
    for path in data_files(spec, tuple(FORMATS), key):
        yield load_file(path)


def load_file(path: Path) -> Table:
    """One file through `datasets`, with file-and-line errors."""
    import datasets

    datasets.disable_progress_bars()
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(f"{path}: cannot read {path.suffix!r} files; use one of {', '.join(sorted(FORMATS))}")
    if not _has_content(path):
        raise DataError(f"{path} is empty; add data to it or remove it from data.path")
    part = scoped_rows(path)  # while `ftdist prepare` builds one unit's rows of a larger table
    if fmt != "parquet" and part is None:  # (a unit's rows: the plan of the units read the whole file already)
        check_utf8(path)  # datasets would end in a raw UnicodeDecodeError
    try:
        dataset = datasets.load_dataset(fmt, data_files=str(path), split="train")
    except Exception as error:  # datasets wraps parser errors in its own types; name the file either way
        if fmt == "json" and path.suffix.lower() == ".jsonl":
            _check_jsonl(path)  # find the bad line, which datasets' error does not name
        raise DataError(f"{path}: could not be read as {fmt}: {_root_cause(error)}") from None
    if len(dataset) == 0:
        raise DataError(f"{path} has no rows; add data to it or remove it from data.path")
    jsonl = path if fmt == "json" and path.suffix.lower() == ".jsonl" else None
    if part is not None:  # a contiguous range: a slice of the Arrow table, no copy
        return Table(
            str(path), Rows(dataset.select(range(part.start, part.end))), list(dataset.column_names), jsonl, part.start
        )
    return Table(str(path), Rows(dataset), list(dataset.column_names), jsonl)


def _load_hub(spec: str) -> Table:
    import datasets

    try:
        dataset = datasets.load_dataset(spec, split="train")
    except Exception as error:
        raise DataError(f"data.path={spec}: could not load this hub dataset ({_root_cause(error)})") from None
    return Table(spec, Rows(dataset), list(dataset.column_names))


def _has_content(path: Path) -> bool:
    with open(path, "rb") as handle:
        return any(chunk.strip() for chunk in iter(lambda: handle.read(1 << 20), b""))


def _check_jsonl(path: Path) -> None:
    """Parse line by line so that a malformed line is reported with its number (datasets reports none)."""
    with open(path, encoding="utf-8", errors="strict") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path} line {number}: malformed JSON ({error.msg} at column {error.colno}); "
                    "each line of a .jsonl file must be one JSON object"
                ) from None
            if not isinstance(value, dict):
                raise DataError(f"{path} line {number}: expected a JSON object, got {type(value).__name__}")


def _jsonl_line(path: Path, index: int) -> int:
    """The file line of row `index` (0-based) of a JSONL file: rows are its non-blank lines."""
    with open(path, encoding="utf-8") as handle:
        rows = (number for number, line in enumerate(handle, 1) if line.strip())
        return next(itertools.islice(rows, index, None), index + 1)


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return f"{type(error).__name__}: {error}"
