"""Recipes: one small module per way of turning records into training examples.

Every recipe module has `KIND` and `examples(config, tokenizer)`:
- `KIND = "segments"`: each yielded `Example` is a list of `(text, trained)` segments, e.g. a masked prompt then
  a trained response. It becomes one training example (packed with others, never split).
- `KIND = "documents"`: each `Example` is one trained document; documents are joined and chunked by tokens.
A recipe yields `Skipped(origin, reason)` for a record it leaves out on purpose (counted in the data card);
a record that is *wrong* raises `DataError` naming its file and line instead.
- `KIND = "preference"`: each `PreferenceExample` is a prompt with its responses (chosen and rejected, or
  one completion with its label); it becomes one prepared row (`ftdist.data.preference_rows`), never packed.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from ftdist.data.recipes.base import Example, PreferenceExample, Skipped

REGISTRY = {
    name: f"ftdist.data.recipes.{name}"
    for name in ("text", "instruction", "chat", "qa", "keywords", "headings", "code", "preference")
}

__all__ = ["REGISTRY", "Example", "PreferenceExample", "Skipped", "load_recipe"]


def load_recipe(name: str) -> ModuleType:
    """The recipe module for `data.recipe` (imported lazily)."""
    return importlib.import_module(REGISTRY[name])
