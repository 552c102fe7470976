"""Export a run's model as a Hugging Face folder, and merge LoRA adapters into their base.

The model comes from `ftdist.run_folder` (a run's `final/`, else its latest checkpoint, in any strategy's
format); this module only writes: safetensors, staged and renamed, never pickles or code.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

from torch import nn
from transformers import PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.errors import FtdistError
from ftdist.models.saving import save_hf
from ftdist.run_folder import ADAPTER_CONFIG, load_trained, resolve_model_folder, run_config_for, run_root
from ftdist.staging import staged_folder

EXPORTED = (
    "*.safetensors",
    "*.safetensors.index.json",
    "config.json",
    "generation_config.json",
    ADAPTER_CONFIG,
    "tokenizer*.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.*",
    "merges.txt",
    "spiece.model",
    "chat_template.*",
)


def merge(run_or_model: str | Path, out: str | Path | None = None) -> Path:
    """Fold the LoRA update into the base (W + alpha/r * B @ A) and save a plain HF model folder."""
    model, tokenizer, folder = load_trained(run_or_model)
    if not hasattr(model, "merge_and_unload"):
        raise FtdistError(f"{folder} holds no LoRA adapter to merge; it is already a full model (use ftdist export)")
    target = Path(out) if out else run_root(folder) / "merged"
    merged = model.merge_and_unload()
    _save(merged, tokenizer, target)
    return target


def export(run_or_model: str | Path, out: str | Path | None = None) -> Path:
    """Write HF safetensors: the full model, or the adapter (with its base recorded in adapter_config.json)."""
    folder = resolve_model_folder(run_or_model)
    target = Path(out) if out else run_root(folder) / "export"
    if folder.name == "final" or not (folder / "config.yaml").exists():
        from ftdist.models import check_safetensors_folder

        check_safetensors_folder(folder)  # a pickle-only folder has nothing export may copy
        with staged_folder(target, intact=f"{folder} is untouched") as staging:
            for name in exported_files(folder):
                shutil.copy2(folder / name, staging / name)
            if (staging / ADAPTER_CONFIG).exists():
                record_portable_base(staging / ADAPTER_CONFIG, run_config_for(folder))
        return target
    model, tokenizer, _ = load_trained(folder)
    _save(model, tokenizer, target)
    return target


def record_portable_base(adapter_config: Path, config: RunConfig | None) -> None:
    """Record an exported adapter's base as the run's config names it, not as the absolute path of the machine
    that trained it: a Hub id stays the id; a local base becomes the `model.path` the config wrote (relative to
    the working directory, like every path in a config), or its path relative to the working directory of the
    export. `resolve_base` finds such a path from the working directory, then from the adapter's parents."""
    data = json.loads(adapter_config.read_text())
    base = data.get("base_model_name_or_path") or ""
    if not Path(base).is_absolute():
        return
    written = config.model.path if config is not None and config.model.path else None
    if written and not Path(written).is_absolute() and _same_folder(written, base):
        portable = written
    elif Path(base).resolve().is_relative_to(Path.cwd().resolve()):
        portable = str(Path(base).resolve().relative_to(Path.cwd().resolve()))
    else:
        return  # outside this checkout (a shared model store): the absolute path is the portable name
    adapter_config.write_text(json.dumps({**data, "base_model_name_or_path": portable}, indent=2) + "\n")


def _same_folder(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).resolve()
    except OSError:
        return False


def exported_files(folder: Path) -> list[str]:
    """The files of a model folder that export copies: safetensors weights (and their index), the model and
    generation config, and the tokenizer. Never pickles (.bin, .pt) or code (.py): export promises safetensors,
    and a folder someone else made may carry either."""
    return sorted(
        path.name
        for path in folder.iterdir()
        if path.is_file() and any(fnmatch.fnmatch(path.name, pattern) for pattern in EXPORTED)
    )


def _save(model: nn.Module, tokenizer: PreTrainedTokenizerBase, target: Path) -> None:
    with staged_folder(target, intact="The run's checkpoints and final/ are untouched") as staging:
        save_hf(model, staging)
        tokenizer.save_pretrained(staging)
