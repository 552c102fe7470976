"""Find and read data files, with errors that name the config key and the file."""

from __future__ import annotations

import codecs
from importlib import resources
from pathlib import Path

from ftdist.errors import DataError

BUILTIN_PREFIX = "builtin:"


def resolve_data_path(spec: str, key: str = "data.path") -> Path:
    """`builtin:NAME` -> the file shipped in ftdist/assets; anything else is a path (relative to the cwd)."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        path = Path(str(resources.files("ftdist") / "assets" / name))
        if not path.exists():
            shipped = sorted(p.name for p in path.parent.iterdir() if p.suffix in (".txt", ".jsonl", ".json"))
            raise DataError(f"{key}={spec}: ftdist ships no file named {name!r}; shipped files: {', '.join(shipped)}")
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"{key}={spec}: no such file or folder (looked in {path.resolve()}). Fix the path, "
            f"or use builtin:tiny_sql_corpus.txt for the shipped SQL corpus"
        )
    return path


def read_text(spec: str, key: str = "data.path") -> str:
    """The whole text of a data file; an empty file is an error, not a zero-step run."""
    path = resolve_data_path(spec, key)
    if path.is_dir():
        raise DataError(f"{key}={spec} is a folder; the stream recipe reads one text file")
    check_utf8(path)
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise DataError(f"{key}={spec} is empty; the model needs text to learn from")
    return text


def check_utf8(path: Path, block: int = 1 << 20, start: int = 0, end: int | None = None) -> None:
    """Fail with the file, line and byte offset of the first byte sequence that is not UTF-8 in bytes
    [start, end) of the file (a unit's piece of it; `start` is at a line start).

    Read in blocks through an incremental decoder, so a large file costs no more memory than one block."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    offset = start
    left = (path.stat().st_size if end is None else end) - start
    with open(path, "rb") as handle:
        handle.seek(start)
        while True:
            chunk = handle.read(min(block, left))
            left -= len(chunk)
            pending = len(decoder.getstate()[0])  # an unfinished sequence carried over from the last block
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as error:  # error.object is the carried-over bytes + this block
                start = offset - pending + error.start
                line = 1 + _lines_before(path, offset - pending) + error.object[: error.start].count(b"\n")
                raise DataError(
                    f"{path} line {line} (byte offset {start}) is not valid UTF-8 ({error.reason}, byte "
                    f"0x{error.object[error.start]:02x}); save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 "
                    f"{path.name}), or remove that line"
                ) from None
            if not chunk:
                return
            offset += len(chunk)


def _lines_before(path: Path, offset: int) -> int:
    """Line ends in the file's first `offset` bytes (counted only for an error message)."""
    count = 0
    with open(path, "rb") as handle:
        while offset > 0:
            block = handle.read(min(offset, 1 << 22))
            if not block:
                break
            count, offset = count + block.count(b"\n"), offset - len(block)
    return count
