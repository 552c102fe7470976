"""`instruction`: Alpaca-style instruction / input / output. The prompt is masked; only the output trains."""

from __future__ import annotations

from collections.abc import Iterator

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, text_field
from ftdist.data.tables import load_tables

KIND = "segments"


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example]:
    columns = {name: config.column(name) for name in ("instruction", "input", "output")}
    for table in load_tables(config.path):
        table.require("instruction", columns["instruction"])
        table.require("output", columns["output"])
        for index, row in enumerate(table.rows):
            instruction = text_field(table, index, row, "instruction", columns["instruction"])
            extra = text_field(table, index, row, "input", columns["input"], required=False)
            output = text_field(table, index, row, "output", columns["output"])
            if extra.strip():
                prompt = config.template.format(instruction=instruction, input=extra)
            else:
                prompt = config.template_no_input.format(instruction=instruction)
            yield Example([(prompt, False), (output, True)], table.where(index))
