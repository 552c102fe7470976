"""`headings`: Markdown documents split at their headings; the heading path is the prompt, the section the answer.

`# Guide` / `## Data` / `### Packing` gives the prompt "Guide > Data > Packing" for the text under
`### Packing`. Headings inside fenced code blocks are text, not headings. (.docx is not read: it would need
python-docx, and Markdown covers the need.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, Skipped
from ftdist.data.sources import check_utf8
from ftdist.data.tables import data_files
from ftdist.errors import DataError

KIND = "segments"
PROMPT = "{path}\n\n"
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


def sections(text: str) -> Iterator[tuple[int, list[str], str]]:
    """(line of the heading, heading path, section body) for each heading of a Markdown text."""
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    line_no, fenced = 0, False

    def flush():
        if stack:
            yield line_no, [title for _, title in stack], "\n".join(body).strip()

    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match is None:
            body.append(line)
            continue
        yield from flush()
        level = len(match.group(1))
        stack = [(lvl, title) for lvl, title in stack if lvl < level] + [(level, match.group(2))]
        body, line_no = [], number
    yield from flush()


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example | Skipped]:
    for path in data_files(config.path, (".md", ".markdown")):
        check_utf8(Path(path))
        text = Path(path).read_text(encoding="utf-8")
        if not text.strip():
            raise DataError(f"{path} is empty; add text to it or remove it from data.path")
        found = False
        for line, heading_path, body in sections(text):
            found = True
            origin = f"{path} line {line}"
            if body:
                yield Example([(PROMPT.format(path=" > ".join(heading_path)), False), (body, True)], origin)
            else:
                yield Skipped(origin, "heading with no text before the next heading")
        if not found:
            raise DataError(f"{path} has no Markdown headings (# Title); the headings recipe splits at them")
