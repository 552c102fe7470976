"""`text`: raw documents (rows of a text column, or whole .txt/.md files) for next-token training.

Documents are joined (each ended by EOS) and cut into chunks of exactly `seq_len + 1` tokens, so every
sequence is full and none is padded (only the last chunk of a split may be short). See `ftdist.data.tokenize`.
"""

from __future__ import annotations

from collections.abc import Iterator

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, text_field
from ftdist.data.tables import load_tables

KIND = "documents"


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example]:
    column = config.column("text")
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
