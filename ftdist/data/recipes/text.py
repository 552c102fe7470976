"""`text`: raw documents (rows of a text column, or whole .txt/.md files) for next-token training.

Documents are joined (each ended by EOS) and cut into chunks of exactly `seq_len + 1` tokens, so every
sequence is full and none is padded (only the last chunk of a split may be short). See `ftdist.data.tokenize`.

A .txt/.md file is one document, read here directly (not through `datasets`, which would copy it into its
own cache first) and handed on in pieces of about 64 KB cut after a line end: memory stays bounded, and the
pieces tokenize in parallel. A byte-level BPE with GPT-2-style pre-tokenization (SmolLM2, Llama 3, GPT-2)
starts a new pre-token after a line end anyway, so the pieces give the tokens the whole file would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, text_field
from ftdist.data.sources import BUILTIN_PREFIX, check_utf8
from ftdist.data.tables import FORMATS, data_files, load_tables
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
    """One file as one document, in pieces of about 64 KB that end after a line end (EOS only after the last)."""
    check_utf8(path)
    piece: list[str] = []
    size = 0
    found = False
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            piece.append(line)
            size += len(line)
            if size >= PIECE_CHARS:
                text = "".join(piece)
                found = found or bool(text.strip())
                piece, size = [], 0
                yield Example([(text, True)], str(path), eos=False)
    text = "".join(piece).removesuffix("\n")  # as the file's lines joined by line ends
    if not (text.strip() or found):
        raise DataError(f"{path} is empty; add data to it or remove it from data.path")
    yield Example([(text, True)], str(path))


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
