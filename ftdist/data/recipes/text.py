"""`text`: raw documents (rows of a text column, or whole .txt/.md files) for next-token training.

Documents are joined (each ended by EOS) and cut into chunks of exactly `seq_len + 1` tokens, so every
sequence is full and none is padded (only the last chunk of a split may be short). See `ftdist.data.tokenize`.

A .txt/.md file is one document, read here directly (not through `datasets`, which would copy it into its
own cache first) and handed on in pieces of about 64 KB cut after a line end: memory stays bounded, and the
pieces tokenize in parallel. A byte-level BPE with GPT-2-style pre-tokenization (SmolLM2, Llama 3, GPT-2)
starts a new pre-token after a line end anyway, so the pieces give the tokens the whole file would. A file
larger than `data.unit_mb` is read a unit's byte range at a time (`ftdist.data.units`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, text_field
from ftdist.data.sources import BUILTIN_PREFIX, check_utf8
from ftdist.data.tables import FORMATS, data_files, load_tables
from ftdist.data.units import scoped_part
from ftdist.errors import DataError

KIND = "documents"
PIECE_CHARS = 1 << 16


def _text_files(spec: str) -> list[Path] | None:
    """The files of `spec` when all are plain text; None when tables (or a hub id) are among them."""
    if not spec.startswith(BUILTIN_PREFIX) and not Path(spec).expanduser().exists():
        return None
    files = data_files(spec, tuple(FORMATS))
    return files if all(path.suffix.lower() in (".txt", ".md") for path in files) else None


def file_pieces(path: Path) -> Iterator[Example]:
    """One file as one document, in pieces of about 64 KB that end after a line end (EOS only after the last).

    While a unit of a larger set is built, only the unit's byte range of the file (`ftdist.data.units`): the
    document then ends (EOS) only where the file does."""
    part = scoped_part(path)
    start, end = (part.start, part.end) if part else (0, None)
    ends_file = part is None or part.end == part.size
    check_utf8(path, start=start, end=end)
    piece: list[str] = []
    size = 0
    found = False
    with open_range(path, start, end) as handle:
        for line in handle:
            piece.append(line)
            size += len(line)
            if size >= PIECE_CHARS:
                text = "".join(piece)
                found = found or bool(text.strip())
                piece, size = [], 0
                yield Example([(text, True)], str(path), eos=False)
    if not ends_file:
        if piece:
            yield Example([("".join(piece), True)], str(path), eos=False)
        return
    text = "".join(piece).removesuffix("\n")  # as the file's lines joined by line ends
    if not (text.strip() or found or part):
        raise DataError(f"{path} is empty; add data to it or remove it from data.path")
    yield Example([(text, True)], str(path))


def open_range(path: Path, start: int, end: int | None) -> io.TextIOBase:
    """Bytes [start, end) of the file as text, with the universal newlines `open` gives the whole file."""
    if start == 0 and end is None:
        return open(path, encoding="utf-8")  # noqa: SIM115 (the caller closes it)
    return io.TextIOWrapper(io.BufferedReader(_ByteRange(path, start, end)), encoding="utf-8")


class _ByteRange(io.RawIOBase):
    """A binary reader that sees only bytes [start, end) of a file."""

    def __init__(self, path: Path, start: int, end: int) -> None:
        self.handle = open(path, "rb")  # noqa: SIM115 (closed in close)
        self.handle.seek(start)
        self.left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.handle.read(min(len(buffer), self.left))
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def close(self) -> None:
        self.handle.close()
        super().close()


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example]:
    column = config.column("text")
    files = _text_files(config.path)
    if files is not None:
        for path in files:
            yield from file_pieces(path)
        return
    for table in load_tables(config.path):
        table.require("text", column)
        if table.name.endswith((".txt", ".md")):  # datasets reads text files line by line: one file, one document
            text = "\n".join(
                text_field(table, i, row, "text", column, required=False) for i, row in enumerate(table.rows)
            )
            if text.strip():
                yield Example([(text, True)], table.name)
            continue
        for index, row in enumerate(table.rows):
            text = text_field(table, index, row, "text", column, required=False)
            if text.strip():  # blank lines of a .txt file are paragraph breaks, not bad rows
                yield Example([(text, True)], table.where(index))
