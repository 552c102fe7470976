"""`ftdist compare`: one self-contained HTML report and a Markdown summary from eval results and run folders.

The HTML carries its plots as base64 PNGs and a Content-Security-Policy that forbids every network fetch, so it
opens offline, mails as one file, and cannot leak a request.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from ftdist.errors import FtdistError
from ftdist.eval.report import figures
from ftdist.eval.report.sources import Model, columns, read_sources, run_stats, settings_differences, task_labels

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"
STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}
td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.flag{background:#fff4e5;border:1px solid #f0a030;padding:8px 12px;margin:1em 0}img{max-width:100%}
.ok{color:#1a7f37}.bad{color:#c62828}pre{white-space:pre-wrap;margin:0;font-size:13px}"""
# Counts the plots that decoded, for tests that open the page in a headless browser.
SCRIPT = """addEventListener('load',()=>{const i=[...document.images];
document.body.dataset.imagesLoaded=i.filter(x=>x.complete&&x.naturalWidth>0).length+'/'+i.length;});"""


def write_report(sources: list[str], out: str | Path, samples: int = 8) -> tuple[Path, Path]:
    """Write `report.html`, `report.md` and the plots (PNG) into `out`; returns the two report paths."""
    models = read_sources(sources)
    if not models:
        raise FtdistError("ftdist compare needs at least one run folder or eval result file")
    cols = columns(models)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    pictures: list[tuple[str, str, bytes]] = []  # (title, file name, png)
    curve = figures.curves(models)
    if curve is not None:
        pictures.append(("Loss and learning rate", "curves.png", curve))
    agreement = _agreement(cols)
    for label, sets, total in agreement:
        pictures.append((f"Per-question agreement: {label}", f"agreement-{_slug(label)}.png",
                         figures.agreement(label, sets, total)))  # fmt: skip
    for _, name, png in pictures:
        (folder / name).write_bytes(png)
    flags = settings_differences(cols)
    tables = {
        "metrics": _metric_table(cols),
        "runs": _stats_table(cols),
        "overlap": _overlap_table(agreement),
    }
    sample_tables = [(label, _samples_table(cols, label, samples)) for label in task_labels(cols)]
    sample_tables = [(label, t) for label, t in sample_tables if t]
    html_path, md_path = folder / "report.html", folder / "report.md"
    html_path.write_text(_html(cols, flags, tables, sample_tables, pictures), encoding="utf-8")
    md_path.write_text(_markdown(cols, flags, tables, sample_tables, pictures), encoding="utf-8")
    return html_path, md_path


# --- tables: (header, rows) with plain strings; the renderers style them ----------------------------------------
Table = tuple[list[str], list[list[str]]]


def _metric_table(cols: list[Model]) -> Table:
    bases = [m for m in cols if m.is_base]
    header = ["task", "metric"] + [m.name for m in cols]
    tuned = [m for m in cols if not m.is_base]
    if bases:
        header += [f"{m.name} - base" for m in tuned]
    rows = []
    for label in task_labels(cols):
        metrics: list[str] = []
        for m in cols:
            metrics += [k for k in m.results.get(label, {}).get("metrics", {}) if k not in metrics]
        for metric in metrics:
            values = [_metric(m, label, metric) for m in cols]
            row = [label, metric] + _marked_best(metric, values)
            if bases:
                for m in tuned:
                    base = m.base or bases[0]
                    value, before = _metric(m, label, metric), _metric(base, label, metric)
                    row.append("" if value is None or before is None else _difference(metric, value - before))
            rows.append(row)
    return header, rows


LOWER_IS_BETTER = ("loss", "perplexity", "ppl", "nats", "bits_per", "error", "wall")
HIGHER_IS_BETTER = ("accuracy", "acc", "exact", "match", "f1", "valid", "correct", "score", "bleu", "rouge")


def _direction(metric: str) -> int:
    """-1 when lower is better, +1 when higher is, 0 when the name does not say (counts, sizes)."""
    name = metric.lower()
    if any(word in name for word in LOWER_IS_BETTER):
        return -1
    return 1 if any(word in name for word in HIGHER_IS_BETTER) else 0


def _marked_best(metric: str, values: list[float | None]) -> list[str]:
    """The row's values, the best marked ` (best)` when two or more differ and the metric has a direction."""
    cells = [_fmt(v) for v in values]
    numbers = [v for v in values if isinstance(v, (int, float))]
    direction = _direction(metric)
    if direction and len(numbers) >= 2 and len(set(numbers)) > 1:
        best = max(numbers) if direction > 0 else min(numbers)
        cells = [cell + (" (best)" if value == best else "") for cell, value in zip(cells, values)]
    return cells


def _difference(metric: str, change: float) -> str:
    direction = _direction(metric)
    mark = "" if not direction or change == 0 else (" better" if change * direction > 0 else " worse")
    return f"{change:+.4f}{mark}"


def _stats_table(cols: list[Model]) -> Table:
    stats = {m.name: run_stats(m) for m in cols}
    keys: list[str] = []
    for values in stats.values():
        keys += [k for k in values if k not in keys]
    return ["", *stats], [[key] + [_fmt_stat(key, stats[name].get(key)) if key in stats[name] else "not recorded"
                                    for name in stats] for key in keys]  # fmt: skip


def _fmt_stat(key: str, value: Any) -> str:
    """Run statistics as people read them: bytes in GiB, counts as whole numbers."""
    if isinstance(value, (int, float)) and key.startswith("peak"):
        return f"{value / 2**30:.2f} GiB"
    if isinstance(value, float) and "tokens/s" in key:
        return f"{value:,.0f}"
    if isinstance(value, float) and key.endswith(" s"):
        return f"{value:,.1f}"
    return _fmt(value)


def _agreement(cols: list[Model]) -> list[tuple[str, dict[str, set], int]]:
    """For each task with right/wrong rows: the set of item indices each column got right."""
    found = []
    for label in task_labels(cols):
        having = [m for m in cols if any("correct" in r for r in m.results.get(label, {}).get("rows", []))]
        if len(having) < 2:
            continue
        sets = {m.name: {r["index"] for r in m.results[label]["rows"] if r.get("correct")} for m in having}
        total = max(len(m.results[label]["rows"]) for m in having)
        found.append((label, sets, total))
    return found


def _overlap_table(agreement: list[tuple[str, dict[str, set], int]]) -> Table:
    rows = []
    for label, sets, total in agreement:
        for key, count in sorted(figures.regions(sets).items(), key=lambda kv: (-len(kv[0]), kv[0])):
            rows.append([label, " & ".join(key) + (" only" if len(key) == 1 else ""), str(count), str(total)])
        rows.append([label, "none", str(total - len(set().union(*sets.values()))), str(total)])
    return ["task", "right for", "questions", "of"], rows


def _samples_table(cols: list[Model], label: str, count: int) -> Table | None:
    having = [m for m in cols if m.results.get(label, {}).get("rows") and "response" in m.results[label]["rows"][0]]
    if not having:
        return None
    first = having[0].results[label]["rows"][:count]
    by_model = [{r["index"]: r for r in m.results[label]["rows"]} for m in having]
    rows = []
    for row in first:
        cells = [str(row.get("question", "")), str(row.get("answer", ""))]
        for rows_of in by_model:
            other = rows_of.get(row["index"], {})
            mark = {True: " ✓", False: " ✗"}.get(other.get("correct"), "")
            cells.append(str(other.get("response", "")) + mark)
        rows.append(cells)
    return ["question", "answer"] + [m.name for m in having], rows


def _metric(model: Model, label: str, metric: str) -> float | None:
    return model.results.get(label, {}).get("metrics", {}).get(metric)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1):
        return f"{int(value):,}"  # counts are whole numbers: 14,400, not 14,400.0
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.4f}"
    return str(value)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def _flag_lines(flags: dict[str, list[str]]) -> list[str]:
    return [f"{label}: the models were evaluated with different {', '.join(keys)}" for label, keys in flags.items()]


MARKS = {"(best)": "ok", "better": "ok", "worse": "bad"}  # what _metric_table appends to a number


# --- renderers ----------------------------------------------------------------------------------------------
def _html_table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            number = _is_number(cell.split(" ")[0])
            css = "num" if number else ""
            text = (
                html.escape(cell)
                .replace(" ✓", ' <span class="ok">✓</span>')
                .replace(" ✗", ' <span class="bad">✗</span>')
            )
            for mark, style in MARKS.items() if number else ():
                text = text.replace(f" {mark}", f' <span class="{style}">{mark}</span>')
            cells.append(
                f'<td class="{css.strip()}"><pre>{text}</pre></td>'
                if "\n" in cell
                else f'<td class="{css.strip()}">{text}</td>'
            )
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _html(cols, flags, tables, sample_tables, pictures) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">",
        f"<title>ftdist compare</title><style>{STYLE}</style><script>{SCRIPT}</script></head><body>",
        "<h1>ftdist compare</h1>",
        "<p>" + ", ".join(f"<b>{html.escape(m.name)}</b> ({html.escape(m.source)})" for m in cols) + "</p>",
    ]
    for line in _flag_lines(flags):
        parts.append(f"<div class='flag'>⚠ {html.escape(line)}: the numbers are not strictly comparable.</div>")
    parts += ["<h2>Metrics</h2>", _html_table(tables["metrics"])]
    if tables["runs"][1]:
        parts += ["<h2>Runs</h2>", _html_table(tables["runs"])]
    for title, _, png in pictures:
        data = base64.b64encode(png).decode()
        parts += [
            f"<h2>{html.escape(title)}</h2>",
            f"<img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>",
        ]
    if tables["overlap"][1]:
        parts += ["<h2>Overlap</h2>", _html_table(tables["overlap"])]
    for label, table in sample_tables:
        parts += [f"<h2>Sample generations: {html.escape(label)}</h2>", _html_table(table)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _md_table(table: Table) -> str:
    header, rows = table

    def line(cells):
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ⏎ ") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


def _markdown(cols, flags, tables, sample_tables, pictures) -> str:
    parts = ["# ftdist compare", "", "Models: " + ", ".join(f"**{m.name}** (`{m.source}`)" for m in cols), ""]
    for line in _flag_lines(flags):
        parts += [f"> **Warning:** {line}; the numbers are not strictly comparable.", ""]
    parts += ["## Metrics", "", _md_table(tables["metrics"]), ""]
    if tables["runs"][1]:
        parts += ["## Runs", "", _md_table(tables["runs"]), ""]
    for title, name, _ in pictures:
        parts += [f"## {title}", "", f"![{title}]({name})", ""]
    if tables["overlap"][1]:
        parts += ["## Overlap", "", _md_table(tables["overlap"]), ""]
    for label, table in sample_tables:
        parts += [f"## Sample generations: {label}", "", _md_table(table), ""]
    return "\n".join(parts)


def _is_number(cell: str) -> bool:
    try:
        float(cell.replace(",", ""))
    except ValueError:
        return False
    return True
