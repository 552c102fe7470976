"""Saving a model as a Hugging Face folder (safetensors), the one call every writer of a model folder uses.

Why a wrapper: transformers' `save_pretrained` unwraps the model through accelerate's
`extract_model_from_parallel`, which imports DeepSpeed (seconds, and a probe of its C++ ops) only to ask whether
the model is a `DeepSpeedEngine`. The model ftdist hands over is already unwrapped by its strategy, so in a
process that has not imported DeepSpeed the answer is known: it is not one. For the duration of the call,
accelerate's availability check answers so; a process that uses DeepSpeed has imported it and is unaffected.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn


@contextlib.contextmanager
def _deepspeed_not_probed() -> Iterator[None]:
    if "deepspeed" in sys.modules:
        yield
        return
    try:
        import accelerate.utils.other as other
    except ImportError:
        yield
        return
    original = getattr(other, "is_deepspeed_available", None)
    if original is None:  # another accelerate layout: leave it alone
        yield
        return
    other.is_deepspeed_available = lambda: False
    try:
        yield
    finally:
        other.is_deepspeed_available = original


def save_hf(model: nn.Module, folder: Path, state_dict: dict[str, torch.Tensor] | None = None) -> None:
    """`model.save_pretrained(folder)` in safetensors, with `state_dict` (gathered weights) if given."""
    with _deepspeed_not_probed():
        model.save_pretrained(folder, state_dict=state_dict, safe_serialization=True)
