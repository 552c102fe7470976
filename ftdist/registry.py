"""Registries of named parts (methods, strategies): a name maps to "module:Class", imported on first use.

Lazy import is the point: `method: full` never imports peft, `strategy: single` never imports DeepSpeed.
"""

from __future__ import annotations

import importlib
from typing import Any


class Registry(dict[str, str]):
    """name -> "module:attribute"; `load(name)` imports the module and returns the attribute."""

    def load(self, name: str) -> Any:
        module_name, attribute = self[name].split(":")
        return getattr(importlib.import_module(module_name), attribute)
