"""`keywords`: paragraphs paired with the keywords RAKE extracts from them.

RAKE (Rose et al., 2010) needs only a stopword list: candidate phrases are the runs of words between
stopwords and punctuation; a word scores degree / frequency, a phrase the sum of its words. The list below
ships with ftdist because NLTK's stopword corpus is a download, and this must run offline.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from importlib import resources

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, Skipped, text_field
from ftdist.data.tables import load_tables

KIND = "segments"

STOPWORDS = frozenset(
    line.strip()
    for line in (resources.files("ftdist") / "assets" / "stopwords_en.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
)
_SPLIT_SENTENCES = re.compile(r"[.!?,;:\t\"()\[\]{}\n\u2018\u2019\u201c\u201d]|\s-\s|--")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9'_-]*")


def rake(text: str, top_k: int) -> list[str]:
    """The `top_k` best RAKE phrases of `text`, best first, lower-cased, without repeats."""
    phrases: list[list[str]] = []
    for sentence in _SPLIT_SENTENCES.split(text):
        current: list[str] = []
        for word in _WORD.findall(sentence.lower()):
            if word in STOPWORDS or len(word) < 2:
                if current:
                    phrases.append(current)
                current = []
            else:
                current.append(word)
        if current:
            phrases.append(current)
    frequency: dict[str, int] = defaultdict(int)
    degree: dict[str, int] = defaultdict(int)
    for phrase in phrases:
        for word in phrase:
            frequency[word] += 1
            degree[word] += len(phrase)
    scored: dict[str, float] = {}
    for phrase in phrases:
        if len(phrase) > 4:  # long runs are clauses, not keywords
            continue
        key = " ".join(phrase)
        scored[key] = sum(degree[w] / frequency[w] for w in phrase)
    ranked = sorted(scored.items(), key=lambda item: (-item[1], item[0]))
    return [phrase for phrase, _ in ranked[:top_k]]


def paragraphs(config: DataConfig) -> Iterator[tuple[str, str]]:
    """(origin, paragraph): text files split on blank lines; table rows each split on blank lines."""
    column = config.column("text")
    for table in load_tables(config.path):
        table.require("text", column)
        if table.name.endswith((".txt", ".md")):  # one row per line: regroup lines into paragraphs
            start, lines = 0, []
            for index, row in enumerate([*table.rows, {column: ""}]):
                line = text_field(table, index, row, "text", column, required=False) if index < len(table.rows) else ""
                if line.strip():
                    start = index if not lines else start
                    lines.append(line)
                elif lines:
                    yield table.where(start), "\n".join(lines)
                    lines = []
            continue
        for index, row in enumerate(table.rows):
            for paragraph in re.split(r"\n\s*\n", text_field(table, index, row, "text", column)):
                if paragraph.strip():
                    yield table.where(index), paragraph.strip()


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example | Skipped]:
    options = config.keywords
    for origin, paragraph in paragraphs(config):
        if len(paragraph.split()) < options.min_words:
            yield Skipped(origin, f"paragraph under data.keywords.min_words={options.min_words} words")
            continue
        keywords = rake(paragraph, options.top_k)
        if not keywords:
            yield Skipped(origin, "no keyword candidates (only stopwords)")
            continue
        yield Example([(options.template.format(text=paragraph), False), (", ".join(keywords), True)], origin)
