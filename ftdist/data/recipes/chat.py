"""`chat`: conversations rendered with a chat template; only the assistant turns train.

Rendering and masking live in `ftdist.data.recipes.chat_template` (the `preference` recipe shares them).
"""

from __future__ import annotations

from collections.abc import Iterator

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example
from ftdist.data.recipes.chat_template import checked_messages, renderer, turn_segments
from ftdist.data.tables import load_tables

KIND = "segments"


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example]:
    render = renderer(config, tokenizer)
    column = config.column("messages")
    for table in load_tables(config.path):
        table.require("messages", column)
        for index, row in enumerate(table.rows):
            messages = checked_messages(table, index, row.get(column), config.chat.role_map)
            yield Example(turn_segments(messages, render, table.where(index)), table.where(index), eos=False)
