"""`code`: a source tree as (docstring or leading comment -> function) pairs, or as raw text.

Python functions come from `ast` (exact, with `ast.get_docstring`, or the `#` comments right above the
`def`). Java has no parser in the standard library, so methods are found by a header pattern and a brace
matcher that skips strings, characters and comments; their Javadoc or `//` comments above become the prompt.
Functions with no documentation are skipped and counted (nothing to pair them with).
"""

from __future__ import annotations

import ast
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path

from ftdist.config.data import DataConfig
from ftdist.data.recipes.base import Example, Skipped
from ftdist.data.sources import resolve_data_path
from ftdist.data.tables import data_files
from ftdist.errors import DataError

LANGUAGES = {".py": "Python", ".java": "Java"}
_JAVA_HEADER = re.compile(
    r"^[ \t]*(?:(?:public|private|protected|static|final|abstract|synchronized|native|default)\s+)*"
    r"(?:<[^>]+>\s+)?(?:[\w.<>\[\],?]+\s+)?(\w+)\s*\([^;{}]*\)\s*(?:throws\s+[\w.,\s]+)?\{",
    re.MULTILINE,
)
_NOT_METHODS = {"if", "for", "while", "switch", "catch", "synchronized", "else", "return", "new", "try", "do"}


def kind(config: DataConfig) -> str:
    return "documents" if config.code.mode == "raw" else "segments"


def examples(config: DataConfig, tokenizer=None) -> Iterator[Example | Skipped]:
    extensions = tuple(config.code.extensions)
    base = resolve_data_path(config.path)
    root = base if base.is_dir() else None
    for path in data_files(config.path, extensions):
        text = path.read_text(encoding="utf-8", errors="replace")
        name = str(path.relative_to(root)) if root else path.name
        if config.code.mode == "raw":
            if text.strip():
                yield Example([(f"# file: {name}\n{text}", True)], str(path))
            continue
        language = LANGUAGES.get(path.suffix)
        if language is None:
            continue
        found = python_functions(text, path) if language == "Python" else java_methods(text)
        for line, function, doc, source in found:
            origin = f"{path} line {line}"
            if not doc:
                yield Skipped(origin, f"{language} function without docstring or leading comment")
                continue
            prompt = config.code.template.format(language=language, name=function, doc=doc)
            yield Example([(prompt, False), (source, True)], origin)


def python_functions(text: str, path: Path) -> Iterator[tuple[int, str, str, str]]:
    """(line, qualified name, documentation, source) for every function and method."""
    try:
        tree = ast.parse(text)
    except SyntaxError as error:
        raise DataError(f"{path} line {error.lineno}: not valid Python ({error.msg}); fix it or exclude it") from None
    lines = text.splitlines()

    def visit(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([child.lineno] + [d.lineno for d in child.decorator_list])
                doc = ast.get_docstring(child) or _comments_above(lines, first, "#")
                source = textwrap.dedent(" " * child.col_offset + ast.get_source_segment(text, child))
                yield child.lineno, prefix + child.name, _first_paragraph(doc), source
                yield from visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")

    yield from visit(tree, "")


def java_methods(text: str) -> Iterator[tuple[int, str, str, str]]:
    """(line, name, documentation, source) for every method or constructor with a body."""
    lines = text.splitlines()
    for match in _JAVA_HEADER.finditer(text):
        name = match.group(1)
        if name in _NOT_METHODS or _inside_comment_or_string(text, match.start()):
            continue
        end = _matching_brace(text, match.end() - 1)
        if end is None:
            continue
        line = text.count("\n", 0, match.start()) + 1
        doc = _javadoc_above(lines, line) or _comments_above(lines, line, "//")
        yield line, name, _first_paragraph(doc), textwrap.dedent(text[match.start() : end + 1])


def _comments_above(lines: list[str], line: int, marker: str) -> str:
    """The run of `marker` comment lines directly above 1-based `line`."""
    found, index = [], line - 2
    while index >= 0 and lines[index].strip().startswith(marker):
        found.append(lines[index].strip()[len(marker) :].strip())
        index -= 1
    return "\n".join(reversed(found))


def _javadoc_above(lines: list[str], line: int) -> str:
    index = line - 2
    while index >= 0 and lines[index].strip().startswith("@"):  # annotations sit between Javadoc and method
        index -= 1
    if index < 0 or not lines[index].strip().endswith("*/"):
        return ""
    block = []
    while index >= 0:
        block.append(lines[index])
        if lines[index].strip().startswith("/**"):
            break
        index -= 1
    else:
        return ""
    text = "\n".join(reversed(block)).strip()[3:-2]
    return "\n".join(part.strip().lstrip("*").strip() for part in text.splitlines()).strip()


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split()) if doc else ""


def _matching_brace(text: str, open_at: int) -> int | None:
    """Index of the `}` closing the `{` at `open_at`, skipping string/char literals and comments."""
    depth, i = 0, open_at
    while i < len(text):
        char = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i)
            i = len(text) if i < 0 else i
        elif text.startswith("/*", i):
            i = text.find("*/", i + 2)
            i = len(text) if i < 0 else i + 1
        elif char in "\"'":
            i += 1
            while i < len(text) and text[i] != char:
                i += 2 if text[i] == "\\" else 1
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _inside_comment_or_string(text: str, position: int) -> bool:
    line_start = text.rfind("\n", 0, position) + 1
    prefix = text[line_start:position]
    return "//" in prefix or prefix.count('"') % 2 == 1 or text.rfind("/*", 0, position) > text.rfind("*/", 0, position)
