"""`qa`: question / answer pairs (the Bible QA style), optionally after a masked few-shot prefix."""

from __future__ import annotations

from collections.abc import Iterator

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, text_field
from ftdist.data.tables import load_tables
from ftdist.errors import DataError

KIND = "segments"


def few_shot_prefix(config: DataConfig) -> str:
    """The worked examples, each rendered as prompt + answer, separated by blank lines."""
    shots = []
    for number, shot in enumerate(config.qa.few_shot, 1):
        if "question" not in shot or "answer" not in shot:
            raise DataError(f"data.qa.few_shot item {number} needs both 'question' and 'answer'; got {sorted(shot)}")
        shots.append(config.qa.template.format(question=shot["question"]) + shot["answer"] + "\n\n")
    return "".join(shots)


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example]:
    question, answer = config.column("question"), config.column("answer")
    prefix = few_shot_prefix(config)
    for table in load_tables(config.path):
        table.require("question", question)
        table.require("answer", answer)
        for index, row in enumerate(table.rows):
            prompt = prefix + config.qa.template.format(question=text_field(table, index, row, "question", question))
            yield Example(
                [(prompt, False), (text_field(table, index, row, "answer", answer), True)], table.where(index)
            )
