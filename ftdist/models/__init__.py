"""Build the tokenizer and the model a run trains. Loading is weights-only (safetensors), remote code is opt-in.

Every pretrained base is a Hugging Face folder on disk by the time it loads: `model.path` itself, the cached
conversion of a GGUF file (`models/gguf.py`), or, for adapter methods on a `model.scratch` model, the random
base saved once under the run folder (so the adapter always has a base to refer to, and QLoRA can quantize it
through the same `from_pretrained` path as a real model).
"""

from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.distributed.collectives import on_rank0
from ftdist.errors import FtdistError, FtdistWarning
from ftdist.models.char_tokenizer import build_char_tokenizer
from ftdist.models.gguf import converted_folder
from ftdist.models.quantized import quantized_load_options
from ftdist.models.saving import save_hf
from ftdist.models.scratch import scratch_model_config
from ftdist.run_folder import RunFolder
from ftdist.staging import staged_folder

__all__ = [
    "base_folder",
    "build_model",
    "build_tokenizer",
    "check_safetensors_folder",
    "count_parameters",
    "load_pretrained",
    "model_class",
    "model_from",
    "model_width",
]

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")
_WARNED_REMOTE: set[Path] = set()


def build_tokenizer(config: RunConfig, text: str | None = None) -> PreTrainedTokenizerBase:
    """`char` builds a vocabulary from `text`; anything else is a tokenizer folder or hub id."""
    source = config.model.tokenizer_source
    if source == "gguf":
        source = str(converted_folder(config.model.path, config.model.gguf_file))
    elif source == "char":
        if text is None:
            raise FtdistError("model.tokenizer: char needs the training text to build its vocabulary")
        return build_char_tokenizer(text)
    key = "model.tokenizer" if config.model.tokenizer else "model.path"
    _check_local(source, key)
    warn_remote_code(Path(source).expanduser(), config.model.trust_remote_code)
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=config.model.trust_remote_code)
    except OSError as error:
        raise FtdistError(f"could not load the tokenizer from {key}={source}: {error}") from None


def build_model(
    config: RunConfig, tokenizer: PreTrainedTokenizerBase, dtype: torch.dtype = torch.float32
) -> PreTrainedModel:
    """A fresh model from `model.scratch` (seeded by `seed`), or pretrained weights from `model.path`."""
    return model_from(config, tokenizer, base_folder(config, tokenizer), dtype)


def model_from(
    config: RunConfig, tokenizer: PreTrainedTokenizerBase, folder: Path | None, dtype: torch.dtype = torch.float32
) -> PreTrainedModel:
    """`build_model` from an already resolved `base_folder` (which is collective on a scratch base), with the
    weights in `dtype` (fp32 unless the method freezes them: `Method.base_dtype`). A fresh model is fp32."""
    auto_class, head = model_class(config), head_options(config, tokenizer)
    if folder is None:
        torch.manual_seed(config.seed)
        hf_config = scratch_model_config(config.model.scratch, len(tokenizer), config.data.seq_len)
        for key, value in head.items():
            setattr(hf_config, key, value)
        return auto_class.from_config(hf_config)
    options = {**quantized_load_options(config), **head}
    if head:
        torch.manual_seed(config.seed)  # the new head's initial weights
    trust = config.model.trust_remote_code
    with _new_head_is_expected(bool(head)):
        return load_pretrained(str(folder), trust_remote_code=trust, dtype=dtype, auto_class=auto_class, **options)


def model_class(config: RunConfig):
    """The transformers auto class a run trains: a causal LM, or for `method: reward` a sequence classifier."""
    if config.method.objective == "reward":
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification
    return AutoModelForCausalLM


def model_class_of_folder(folder: Path):
    """The auto class a saved model folder loads with: a sequence classifier when its config.json names one."""
    try:
        architectures = json.loads((Path(folder) / "config.json").read_text()).get("architectures") or []
    except (OSError, ValueError):
        architectures = []
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification
    return AutoModelForCausalLM


def head_options(config: RunConfig, tokenizer: PreTrainedTokenizerBase | None) -> dict:
    """Config values the reward model's head needs: one output, and the pad token transformers pools at."""
    if config.method.objective != "reward":
        return {}
    return {"num_labels": 1, "pad_token_id": None if tokenizer is None else padding_id(tokenizer)}


def padding_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id prepared rows are padded with: the pad token, else EOS, else 0 (a reward model pools at the last
    token that is not this one, so its config must name the same id)."""
    if tokenizer.pad_token_id is not None:
        return tokenizer.pad_token_id
    return tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0


@contextlib.contextmanager
def _new_head_is_expected(new_head: bool):
    """A reward model starts from a causal LM: its score head is new, which transformers reports at length."""
    if not new_head:
        yield
        return
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def base_folder(config: RunConfig, tokenizer: PreTrainedTokenizerBase | None = None) -> Path | None:
    """The HF folder the base loads from, or None for a model built fresh from `model.scratch`."""
    if config.model.gguf_file:
        return converted_folder(config.model.path, config.model.gguf_file)
    if config.model.path is not None:
        local = Path(config.model.path).expanduser()
        return local.resolve() if local.exists() else Path(config.model.path)  # absolute: adapters refer to it
    if not config.method.uses_adapters:
        return None
    target = RunFolder(Path(config.run_dir).resolve()).scratch_base

    def save_scratch_base() -> None:
        if (target / "config.json").exists():
            return
        if tokenizer is None:
            raise FtdistError(f"{target} is missing: the run's saved scratch base was deleted")
        torch.manual_seed(config.seed)
        hf_config = scratch_model_config(config.model.scratch, len(tokenizer), config.data.seq_len)
        # replace=False: another run in the same folder may save the same seeded base first
        with staged_folder(target, intact="Nothing of this run was written yet", replace=False) as staging:
            save_hf(AutoModelForCausalLM.from_config(hf_config), staging)
            tokenizer.save_pretrained(staging)

    on_rank0(save_scratch_base, f"saving the scratch base {target}")  # the others read it once it is whole
    return target


def model_width(config: RunConfig) -> int | None:
    """The base's hidden size, read from its config without loading weights (`precision: auto` needs it before
    the model exists); None when it cannot be read here (a hub id), which keeps CPUs on fp32."""
    if config.model.gguf_file:
        folder = converted_folder(config.model.path, config.model.gguf_file)
    elif config.model.path is not None:
        folder = Path(config.model.path).expanduser()
    else:
        return config.model.scratch.n_embd
    try:
        fields = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return fields.get("hidden_size") or fields.get("n_embd") or fields.get("d_model")


def load_pretrained(
    path: str, trust_remote_code: bool = False, auto_class=AutoModelForCausalLM, **kwargs
) -> PreTrainedModel:
    """Load a causal LM from a folder or hub id, safetensors only (no pickle), fp32 master weights."""
    _check_local(path, "model.path")
    check_safetensors_folder(Path(path).expanduser())
    warn_remote_code(Path(path).expanduser(), trust_remote_code)
    kwargs.setdefault("dtype", torch.float32)
    try:
        return auto_class.from_pretrained(path, use_safetensors=True, trust_remote_code=trust_remote_code, **kwargs)
    except OSError as error:
        raise FtdistError(f"could not load model.path={path}: {error}") from None


def check_safetensors_folder(folder: Path) -> None:
    """Refuse, with the conversion command, a local model folder whose weights are only pickles.

    Why refuse rather than load: a pickle (`pytorch_model.bin`, `*.pt`) can run arbitrary code when it is
    unpickled, so ftdist never reads one; transformers would only say that no safetensors file exists."""
    is_model = (folder / "config.json").exists() or (folder / "adapter_config.json").exists()
    if not folder.is_dir() or not is_model or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        return
    command = (
        'python -c "from transformers import AutoModelForCausalLM as M; '
        f"M.from_pretrained('{folder}', use_safetensors=False).save_pretrained('{folder}-safetensors')\""
    )
    raise FtdistError(
        f"{folder} holds its weights only as pickle ({', '.join(pickles)}), and ftdist loads safetensors only: "
        "unpickling a file can run any code it carries, so it was not opened. If you trust where it came from, "
        f"convert it once with {command} (transformers unpickles with torch.load(weights_only=True)), then "
        f"use {folder}-safetensors (copy the tokenizer files over too if the conversion does not)"
    )


def warn_remote_code(folder: Path, trust_remote_code: bool) -> None:
    """Say once per folder that custom code named by `auto_map` is not run and the stock class is used."""
    config_file = folder / "config.json"
    if trust_remote_code or folder in _WARNED_REMOTE or not config_file.is_file():
        return
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError):
        return
    auto_map = config.get("auto_map") if isinstance(config, dict) else None
    if not auto_map:
        return
    _WARNED_REMOTE.add(folder)
    names = ", ".join(f"{key} -> {value}" for key, value in auto_map.items())
    warnings.warn(
        f"{config_file} names custom code (auto_map: {names}); ftdist does not run it because "
        f"model.trust_remote_code is false, and uses the stock transformers class for model_type "
        f"{config.get('model_type')!r} instead. If this model needs its own code, read that code, then set "
        "model.trust_remote_code=true",
        FtdistWarning,
        stacklevel=3,
    )


def _check_local(path: str, key: str) -> None:
    """A path that is clearly local (absolute, ./, ~) must exist; anything else may be a hub id."""
    local = Path(path)
    if (local.is_absolute() or path.startswith((".", "~"))) and not local.expanduser().exists():
        raise FtdistError(f"{key}={path} does not exist; point it at a Hugging Face model folder")


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts. A 4-bit weight packs two values per stored byte."""
    total = trainable = 0
    for p in model.parameters():
        numel = getattr(p, "ds_numel", None) or p.numel()  # a ZeRO-3 partitioned parameter holds an empty tensor
        count = numel * (2 if p.dtype == torch.uint8 and hasattr(p, "quant_state") else 1)
        total += count
        trainable += count if p.requires_grad else 0
    return trainable, total
