"""`qa`: question/answer JSONL, an optional few-shot prefix, scored lenient, exact or token F1."""

from __future__ import annotations

from typing import Any

from ftdist.errors import FtdistError
from ftdist.eval.items import read_jsonl, read_prefix, require_field
from ftdist.eval.normalize import SCORERS
from ftdist.eval.tasks.base import GenerationTask, Row, mean

DEFAULT_TEMPLATE = "Q: {question}\nA:"


class QATask(GenerationTask):
    name = "qa"

    def items(self) -> list[dict[str, Any]]:
        if self.config.path is None:
            raise FtdistError("task qa needs a question/answer JSONL: --data FILE (or path: in eval.tasks)")
        path, records = read_jsonl(self.config.path, "qa path")
        self.prefix = read_prefix(self.config.prefix, self.config.prefix_file)
        items = []
        for index, record in enumerate(self.limited(records)):
            items.append(
                {
                    "id": record.get("id", index),
                    "question": require_field(path, record, self.config.question_field),
                    "answer": require_field(path, record, self.config.answer_field),
                }
            )
        return items

    def prompt(self, item: dict[str, Any]) -> str:
        return self.prefix + (self.config.template or DEFAULT_TEMPLATE).format(question=item["question"])

    def score(self, item: dict[str, Any], response: str) -> Row:
        value = SCORERS[self.config.scoring](response, item["answer"])
        return {**item, "response": response, "score": value, "correct": value >= 1.0}

    def summarize(self, rows: list[Row]) -> dict[str, float]:
        return {
            self.config.scoring: mean([row["score"] for row in rows]),
            "empty_responses": float(sum(not row["response"] for row in rows)),
        }
