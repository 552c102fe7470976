"""Evaluation results on disk: `<name>.json` (metrics and settings per task) and `<name>.jsonl` (one row per
example, tagged with its task label). `ftdist compare` reads only these files, so a report can be rebuilt
without any model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftdist.errors import FtdistError
from ftdist.eval.tasks.base import Row


def write_results(path: Path, model: str, results: dict[str, tuple[dict[str, Any], list[Row]]]) -> Path:
    """Write `path` (.json) and its rows next to it (.jsonl); returns the JSON path."""
    path = Path(path).with_suffix(".json")
    path.parent.mkdir(parents=True, exist_ok=True)
    rows_path = path.with_suffix(".jsonl")
    summary = {"model": model, "rows": rows_path.name, "results": {label: r for label, (r, _) in results.items()}}
    with rows_path.open("w", encoding="utf-8") as out:
        for label, (_, rows) in results.items():
            for row in rows:
                out.write(json.dumps({"task": label, **row}, ensure_ascii=False) + "\n")
    path.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def read_results(path: Path) -> dict[str, Any]:
    """The summary with each task's rows attached under `rows`."""
    path = Path(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        results = summary["results"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        raise FtdistError(
            f"{path} is not an ftdist eval result (a JSON with 'results'); pass a file `ftdist eval` wrote, or a run "
            "folder with eval/tuned.json"
        ) from None
    rows_path = path.with_name(summary.get("rows", path.with_suffix(".jsonl").name))
    for result in results.values():
        result["rows"] = []
    if rows_path.exists():
        for line in rows_path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            if row.get("task") in results:
                results[row["task"]]["rows"].append(row)
    return summary
