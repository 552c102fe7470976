"""What `ftdist compare` compares: each argument read into a `Model` (a tuned run, a base, or a result file)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ftdist.errors import FtdistError
from ftdist.eval.results import read_results
from ftdist.run_folder import RunFolder
from ftdist.training.tracking import read_metrics

IGNORED_SETTINGS = {"batch_size", "label"}  # do not change the numbers (greedy decoding batches exactly)


@dataclass
class Model:
    """One column of the report."""

    name: str
    source: str  # the model folder the results came from
    results: dict[str, dict[str, Any]]  # task label -> result (with its rows)
    events: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl of the run, if any
    base: Model | None = None  # the run's own base evaluation, if any
    is_base: bool = False


def read_sources(sources: list[str]) -> list[Model]:
    """Tuned models in argument order, each run's base attached (bases with the same source are one)."""
    models, bases = [], {}
    for spec in sources:
        path = Path(spec)
        if path.is_dir():
            model = _read_run(path)
        elif path.is_file():
            summary = read_results(path)
            model = Model(path.stem, summary.get("model", str(path)), summary["results"])
        else:
            raise FtdistError(f"{spec} does not exist; pass run folders (runs/NAME) or eval result .json files")
        if model.base is not None:
            model.base = bases.setdefault(model.base.source, model.base)
        models.append(model)
    if len(bases) == 1:  # one shared base: a short column name (the folder is in the report's header)
        next(iter(bases.values())).name = "base"
    return models


def _read_run(path: Path) -> Model:
    run = RunFolder(path)
    tuned = run.eval / "tuned.json"
    if not run.metrics.exists() and not tuned.exists():
        raise FtdistError(
            f"{path} has neither {run.metrics.name} nor eval/tuned.json: it is not a finished run. Pass a run folder "
            "that trained with an eval: section, or the .json files `ftdist eval` wrote"
        )
    results, source = {}, str(run.final)
    # `ftdist eval RUN --task T` writes eval/T.json: those results belong to the run's model too (tuned.json wins).
    for extra in sorted(run.eval.glob("*.json")) if run.eval.is_dir() else []:
        if extra.name not in ("base.json", "tuned.json"):
            results.update(read_results(extra)["results"])
    if tuned.exists():
        summary = read_results(tuned)
        results.update(summary["results"])
        source = summary.get("model", source)
    results.update(training_results(path, read_metrics(path)))
    base = None
    if (run.eval / "base.json").exists():
        summary = read_results(run.eval / "base.json")
        base = Model(f"base ({Path(summary['model']).name})", summary["model"], summary["results"], is_base=True)
    return Model(path.name, source, results, read_metrics(path), base)


TRAINING = "training"  # the report's pseudo-task for what every run has, with or without eval.tasks
SAMPLES = "samples (eval.prompts)"


def training_results(path: Path, events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The run's final train and val loss (its last evaluation) and its `samples.txt`, as report results."""
    found: dict[str, dict[str, Any]] = {}
    last = next((e for e in reversed(events) if "val_loss" in e), None)
    if last is not None:
        metrics = {f"final {key}": last[key] for key in ("train_loss", "val_loss") if key in last}
        found[TRAINING] = {"metrics": metrics, "settings": {}, "rows": []}
    samples = RunFolder(path).samples
    if samples.is_file():
        rows = [
            {"index": index, "question": prompt, "response": text}
            for index, (prompt, text) in enumerate(_read_samples(samples.read_text(encoding="utf-8")))
        ]
        if rows:
            found[SAMPLES] = {"metrics": {}, "settings": {}, "rows": rows}
    return found


def _read_samples(text: str) -> list[tuple[str, str]]:
    """`samples.txt` (ftdist/training/finish.py): blocks of `### PROMPT` then the generated text."""
    blocks = re.split(r"^### (.*)$", text, flags=re.M)[1:]
    return [(blocks[i], blocks[i + 1].strip("\n")) for i in range(0, len(blocks) - 1, 2)]


def columns(models: list[Model]) -> list[Model]:
    """The report's columns: each distinct base first, then the models in argument order."""
    seen: list[Model] = []
    for model in models:
        if model.base is not None and all(model.base is not b for b in seen):
            seen.append(model.base)
    return seen + models


def settings_differences(models: list[Model]) -> dict[str, list[str]]:
    """task label -> the settings that differ between the columns evaluating it (allowed, but flagged)."""
    differences: dict[str, list[str]] = {}
    for label in task_labels(models):
        found = [m.results[label]["settings"] for m in models if label in m.results]
        keys = sorted({k for s in found for k in s} - IGNORED_SETTINGS)
        differing = [k for k in keys if len({repr(s.get(k)) for s in found}) > 1]
        if differing:
            differences[label] = differing
    return differences


def task_labels(models: list[Model]) -> list[str]:
    labels: list[str] = []
    for model in models:
        labels += [label for label in model.results if label not in labels]
    return labels


def run_stats(model: Model) -> dict[str, float]:
    """Throughput and memory a run logged (whatever metrics.jsonl holds), plus evaluation time."""
    stats: dict[str, float] = {}
    rates = [e["tokens_per_s"] for e in model.events if "tokens_per_s" in e]
    if rates:
        stats["train tokens/s (mean)"] = sum(rates) / len(rates)
    steps = [e["step"] for e in model.events if "step" in e]
    if steps:
        stats["train steps"] = int(max(steps))
    for event in model.events:
        for key, name in RUN_STATS.items():
            value = event.get(key)
            if isinstance(value, (int, float)):
                stats[name] = max(stats.get(name, value), value)
    if any("wall_s" in r for r in model.results.values()):
        stats["eval wall s"] = sum(r.get("wall_s", 0.0) for r in model.results.values())
    return stats


# metrics.jsonl keys shown among a run's statistics, with the names people read; the planner's own bookkeeping
# (predicted peak, ratio, RSS rise) stays in metrics.jsonl.
RUN_STATS = {
    "peak_memory_bytes": "peak GPU memory",
    "peak_rss_bytes": "peak process memory (RSS)",
    "train_wall_s": "train wall s",
    "wall_s": "wall s",
    "elapsed_s": "elapsed s",
}
