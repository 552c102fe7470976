"""Read evaluation data: JSONL items with errors that name the file and line, and few-shot prefixes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftdist.data.sources import resolve_data_path
from ftdist.errors import FtdistError


def read_jsonl(spec: str, key: str = "path") -> tuple[Path, list[dict[str, Any]]]:
    """(file, records) with each record's 1-based line number under `_line`; blank lines are skipped."""
    path = resolve_data_path(spec, key)
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise FtdistError(f"{path}, line {number}: not valid JSON ({error.msg}); fix or remove that line") from None
        if not isinstance(record, dict):
            raise FtdistError(f'{path}, line {number}: expected a JSON object like {{"question": ...}}')
        record["_line"] = number
        records.append(record)
    if not records:
        raise FtdistError(f"{path} holds no items; an evaluation needs at least one line of JSON")
    return path, records


def require_field(path: Path, record: dict[str, Any], *names: str) -> str:
    """The first of `names` present in the record, as text; else an error naming the file, line and field."""
    for name in names:
        if name in record and record[name] is not None:
            return str(record[name])
    choices = " or ".join(repr(n) for n in names)
    present = ", ".join(k for k in record if k != "_line") or "none"
    raise FtdistError(
        f"{path}, line {record['_line']}: missing field {choices} (fields present: {present}); add it, or name the "
        "field holding it with --question-field / --answer-field"
    )


def read_prefix(prefix: str, prefix_file: str | None) -> str:
    """The few-shot prefix: the literal text, or the file's text when `prefix_file` is given."""
    if prefix_file is None:
        return prefix
    return resolve_data_path(prefix_file, "prefix_file").read_text(encoding="utf-8")
