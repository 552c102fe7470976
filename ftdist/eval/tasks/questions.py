"""`questions`: record what the model answers to a fixed list of prompts, to read side by side.

The default list (`builtin:eval_questions.jsonl`, 14 questions written for ftdist) mirrors the Q&A-bot study's
kinds: general knowledge, code, reasoning and maths. A question with an `answer` is also scored lenient, as a
rough signal; the point of the task is the recorded text.
"""

from __future__ import annotations

from typing import Any

from ftdist.eval.items import read_jsonl, read_prefix, require_field
from ftdist.eval.normalize import lenient
from ftdist.eval.tasks.base import GenerationTask, Row, mean

DEFAULT_QUESTIONS = "builtin:eval_questions.jsonl"
DEFAULT_TEMPLATE = "Question: {question}\nAnswer:"


class QuestionsTask(GenerationTask):
    name = "questions"

    def items(self) -> list[dict[str, Any]]:
        path, records = read_jsonl(self.config.path or DEFAULT_QUESTIONS, "questions path")
        self.prefix = read_prefix(self.config.prefix, self.config.prefix_file)
        items = []
        for index, record in enumerate(self.limited(records)):
            item = {"id": record.get("id", index), "question": require_field(path, record, self.config.question_field)}
            for key in ("kind", self.config.answer_field):
                if key in record:
                    item["answer" if key == self.config.answer_field else key] = str(record[key])
            items.append(item)
        return items

    def prompt(self, item: dict[str, Any]) -> str:
        return self.prefix + (self.config.template or DEFAULT_TEMPLATE).format(question=item["question"])

    def score(self, item: dict[str, Any], response: str) -> Row:
        row = {**item, "response": response}
        if "answer" in item:
            row["correct"] = lenient(response, item["answer"]) >= 1.0
        return row

    def summarize(self, rows: list[Row]) -> dict[str, float]:
        metrics = {
            "mean_response_chars": mean([len(row["response"]) for row in rows]),
            "empty_responses": float(sum(not row["response"] for row in rows)),
        }
        scored = [row["correct"] for row in rows if "correct" in row]
        if scored:
            metrics["lenient"] = mean([float(c) for c in scored])
        return metrics
