"""Turn what a run produced into a model: load a run for generation, merge adapters, export HF folders.

Sources, in the order `resolve_model_folder` picks them: a run's `final/` (an HF model folder, or an adapter
folder whose `adapter_config.json` names its base), or the run's latest checkpoint (ftdist's checkpoint format:
`config.yaml` + weights). Any strategy's checkpoint format is read through the strategy registry
(`ftdist.strategies.read_checkpoint_state`); this module never names a format.
"""

from __future__ import annotations

import fnmatch
import json
import shutil
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from ftdist.config import RunConfig, load_config
from ftdist.errors import FtdistError
from ftdist.staging import staged_folder

ADAPTER_CONFIG = "adapter_config.json"
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


def resolve_model_folder(run_or_model: str | Path) -> Path:
    """A run folder means its `final/` (or, before it finished, its latest checkpoint); else the folder itself."""
    path = Path(run_or_model)
    if _is_model_folder(path / "final"):
        return path / "final"
    latest = path / "checkpoints" / "latest"
    if latest.exists():
        return path / "checkpoints" / latest.read_text().strip()
    if _is_model_folder(path):
        return path
    raise FtdistError(
        f"{run_or_model} is neither a run folder (with final/ or checkpoints/) nor a model folder "
        "(with config.json or adapter_config.json); pass e.g. runs/tiny_sql_gpt"
    )


def run_config_for(folder: Path) -> RunConfig | None:
    """The run's config next to a checkpoint or a final/ folder, if there is one."""
    for candidate in (folder / "config.yaml", folder.parent / "config.yaml", folder.parent.parent / "config.yaml"):
        if candidate.exists():
            return load_config(candidate)
    return None


def load_trained(
    run_or_model: str | Path, device: torch.device | str = "cpu"
) -> tuple[nn.Module, PreTrainedTokenizerBase, Path]:
    """(model, tokenizer, source folder). Adapter runs come back as a peft model on their base, unmerged."""
    from ftdist.strategies import is_checkpoint

    folder = resolve_model_folder(run_or_model)
    config = run_config_for(folder)
    if (folder / ADAPTER_CONFIG).exists():
        model = _adapter_model(folder, config)
    elif (folder / "config.yaml").exists() and is_checkpoint(folder):
        model = _checkpoint_model(folder, config or load_config(folder / "config.yaml"))
    else:
        model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.to(device).eval(), tokenizer, folder


def merge(run_or_model: str | Path, out: str | Path | None = None) -> Path:
    """Fold the LoRA update into the base (W + alpha/r * B @ A) and save a plain HF model folder."""
    model, tokenizer, folder = load_trained(run_or_model)
    if not hasattr(model, "merge_and_unload"):
        raise FtdistError(f"{folder} holds no LoRA adapter to merge; it is already a full model (use ftdist export)")
    target = Path(out) if out else _run_root(folder) / "merged"
    merged = model.merge_and_unload()
    _save(merged, tokenizer, target)
    return target


def export(run_or_model: str | Path, out: str | Path | None = None) -> Path:
    """Write HF safetensors: the full model, or the adapter (with its base recorded in adapter_config.json)."""
    folder = resolve_model_folder(run_or_model)
    target = Path(out) if out else _run_root(folder) / "export"
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


# --- loading helpers -------------------------------------------------------------------------------------------
def _adapter_model(folder: Path, config: RunConfig | None) -> nn.Module:
    """The adapter on its base. A QLoRA base is loaded 4-bit as in training, then de-quantized to fp32, so the
    adapter sees the weights it was trained against and a merge is exact up to float rounding."""
    from peft import PeftConfig, PeftModel

    base_path = resolve_base(PeftConfig.from_pretrained(folder).base_model_name_or_path, folder)
    base = _load_base(base_path, config)
    from ftdist.methods.lora import without_peft_deprecation_notice

    with without_peft_deprecation_notice():
        return PeftModel.from_pretrained(base, folder)


def _checkpoint_model(folder: Path, config: RunConfig) -> nn.Module:
    """The trained model from any strategy's checkpoint, consolidated offline: the method builds the model (a
    plain one from the checkpoint's config.json, or the base with fresh adapters) and its state filter loads
    what the checkpoint holds."""
    from ftdist.methods import method_class
    from ftdist.strategies import read_checkpoint_state

    method = method_class(config.method.name)
    if method.state_filter.trainable_only:
        from ftdist.models import base_folder

        model = method.apply(_load_base(base_folder(config), config), config)
    else:
        from transformers import AutoConfig

        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder))
    method.state_filter.load_into(model, read_checkpoint_state(folder), str(folder))
    return model.eval()


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


def resolve_base(base: str | None, adapter: Path) -> Path | str:
    """The folder (or Hub id) an adapter's recorded base names: as given, from the working directory; else a
    relative path from each parent of the adapter folder (a moved checkout); else a Hub id `namespace/name`."""
    from ftdist.config.files import HUB_ID

    if base:
        if Path(base).expanduser().exists():
            return Path(base).expanduser()
        if not Path(base).is_absolute():
            for parent in Path(adapter).resolve().parents:
                if (parent / base).exists():
                    return parent / base
        if HUB_ID.fullmatch(base):
            return base
    raise FtdistError(
        f"the adapter in {adapter} needs its base model at {base!r}, which does not exist here; restore that "
        "folder, run from the folder the run was trained in, or edit base_model_name_or_path in adapter_config.json"
    )


def _same_folder(a: str, b: str) -> bool:
    try:
        return Path(a).expanduser().resolve() == Path(b).resolve()
    except OSError:
        return False


def _load_base(path: Path | str, config: RunConfig | None) -> nn.Module:
    from ftdist.models import load_pretrained
    from ftdist.models.quantized import quantized_load_options

    options = quantized_load_options(config) if config is not None else {}
    base = load_pretrained(str(path), trust_remote_code=bool(config and config.model.trust_remote_code), **options)
    if options:
        base = base.dequantize()  # 4-bit -> the exact de-quantized weights, in the compute dtype
        base = base.to(torch.float32)
    return base


def _is_model_folder(path: Path) -> bool:
    return (path / "config.json").exists() or (path / ADAPTER_CONFIG).exists()


def _run_root(folder: Path) -> Path:
    return folder.parent.parent if folder.parent.name == "checkpoints" else folder.parent


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
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
