"""The trainer's own resumable state: step, schedule, random generators, data position, loss scaler.

Stored per rank as `trainer_state.rank<R>.pt` inside each checkpoint, in types `torch.load(weights_only=True)`
accepts (tensors, numbers, lists, dicts), so resuming never unpickles arbitrary objects.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch


def capture_rng() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": _numpy_state_to_plain(np.random.get_state()),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def state_file(folder: Path, rank: int) -> Path:
    return folder / f"trainer_state.rank{rank}.pt"


def save_trainer_state(folder: Path, rank: int, state: dict[str, Any]) -> None:
    torch.save(state, state_file(folder, rank))


def load_trainer_state(folder: Path, rank: int) -> dict[str, Any]:
    """This rank's state; a rank the checkpoint did not have (resuming on more ranks) takes rank 0's, which
    holds the same step, schedule and global data position (the data state does not depend on the rank)."""
    path = state_file(folder, rank)
    return torch.load(path if path.exists() else state_file(folder, 0), weights_only=True)


def _numpy_state_to_plain(state: tuple) -> list:
    kind, keys, pos, has_gauss, cached = state
    return [kind, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
