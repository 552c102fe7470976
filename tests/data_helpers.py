"""Shared helpers for the data tests: configs on small files, and the recipe pipeline without the cache."""

from __future__ import annotations

import json
from pathlib import Path

from ftdist.config import load_config
from ftdist.data.prepare import _tokenize

TINY_LLAMA = {"family": "llama", "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def config(tmp_path: Path, **data):
    """A run config with the char tokenizer and a tiny Llama; `data` keys go into `data:`."""
    data.setdefault("cache_dir", str(tmp_path / "cache"))
    return load_config(
        {
            "name": "t",
            "output_dir": str(tmp_path / "run"),
            "model": {"scratch": TINY_LLAMA},
            "data": data,
            "train": {"max_steps": 2, "micro_batch_size": 2, "eval_every": 0},
        }
    )


def tokenize(cfg):
    """(tokenizer, Tokenized, skipped) for `cfg`, straight from the recipe (no cache)."""
    return _tokenize(cfg)
