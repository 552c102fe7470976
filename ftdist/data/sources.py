"""Find and read data files, with errors that name the config key and the file."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ftdist.errors import DataError

BUILTIN_PREFIX = "builtin:"


def resolve_data_path(spec: str, key: str = "data.path") -> Path:
    """`builtin:NAME` -> the file shipped in ftdist/assets; anything else is a path (relative to the cwd)."""
    if spec.startswith(BUILTIN_PREFIX):
        name = spec[len(BUILTIN_PREFIX) :]
        path = Path(str(resources.files("ftdist") / "assets" / name))
        if not path.exists():
            shipped = sorted(p.name for p in path.parent.iterdir() if p.suffix in (".txt", ".jsonl", ".json"))
            raise DataError(f"{key}={spec}: ftdist ships no file named {name!r}; shipped files: {', '.join(shipped)}")
        return path
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(
            f"{key}={spec}: no such file or folder (looked in {path.resolve()}). Fix the path, "
            f"or use builtin:tiny_sql_corpus.txt for the shipped SQL corpus"
        )
    return path


def read_text(spec: str, key: str = "data.path") -> str:
    """The whole text of a data file; an empty file is an error, not a zero-step run."""
    path = resolve_data_path(spec, key)
    if path.is_dir():
        raise DataError(f"{key}={spec} is a folder; the stream recipe reads one text file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(
            f"{key}={spec} is not UTF-8 text (byte {error.start}); convert it or pick another file"
        ) from None
    if not text.strip():
        raise DataError(f"{key}={spec} is empty; the model needs text to learn from")
    return text
