"""Tiny preference data and run configs shared by the preference tests (unit, distributed, Slurm).

The pairs carry a signal a tiny model learns in a few dozen steps: every chosen response is " good" and every
rejected one " bad", after a varying prompt; KTO's rows label " good" desirable and " bad" not."""

from __future__ import annotations

import json
from pathlib import Path

PROMPTS = [f"Query {n} of table t{n % 7}:" for n in range(96)]


def write_pairs(path: Path) -> Path:
    rows = [{"prompt": p, "chosen": " good", "rejected": " bad"} for p in PROMPTS]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def write_unpaired(path: Path) -> Path:
    rows = [
        {"prompt": p, "completion": " good" if n % 2 else " bad", "label": bool(n % 2)} for n, p in enumerate(PROMPTS)
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def preference_config(run_dir: Path, data: Path, method: dict, **train) -> dict:
    """A 2-layer char-level Llama (random init) trained by a preference method for 24 steps."""
    return {
        "name": "tiny-preference",
        "output_dir": str(run_dir),
        "seed": 11,
        "method": method,
        "model": {
            "tokenizer": "char",
            "scratch": {"family": "llama", "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 32},
        },
        "data": {"recipe": "preference", "path": str(data), "seq_len": 32, "cache_dir": str(run_dir.parent / "cache")},
        "optim": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.0},
        "schedule": {"name": "constant", "warmup_steps": 0},
        "train": {
            "max_steps": 24,
            "micro_batch_size": 8,
            "eval_every": 12,
            "eval_batches": 2,
            "log_every": 1,
            **train,
        },
        "checkpoint": {"every": 12, "keep_last": 2},
        "tracking": {"progress": False, "plots": False, "tensorboard": False},
    }
