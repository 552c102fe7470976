"""Build the tokenizer and the model a run trains. Loading is weights-only (safetensors), remote code is opt-in."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.errors import FtdistError
from ftdist.models.char_tokenizer import build_char_tokenizer
from ftdist.models.scratch import scratch_model_config

__all__ = ["build_model", "build_tokenizer", "count_parameters", "load_pretrained"]


def build_tokenizer(config: RunConfig, text: str | None = None) -> PreTrainedTokenizerBase:
    """`char` builds a vocabulary from `text`; anything else is a tokenizer folder or hub id."""
    source = config.model.tokenizer_source
    if source == "char":
        if text is None:
            raise FtdistError("model.tokenizer: char needs the training text to build its vocabulary")
        return build_char_tokenizer(text)
    return AutoTokenizer.from_pretrained(source, trust_remote_code=config.model.trust_remote_code)


def build_model(config: RunConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """A fresh model from `model.scratch` (seeded by `seed`), or pretrained weights from `model.path`."""
    if config.model.path is None:
        torch.manual_seed(config.seed)
        hf_config = scratch_model_config(config.model.scratch, len(tokenizer), config.data.seq_len)
        model = AutoModelForCausalLM.from_config(hf_config)
    else:
        model = load_pretrained(config.model.path, trust_remote_code=config.model.trust_remote_code)
    if config.model.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model


def load_pretrained(path: str, trust_remote_code: bool = False, **kwargs) -> PreTrainedModel:
    """Load a causal LM from a folder or hub id, safetensors only (no pickle), fp32 master weights."""
    local = Path(path)
    if (local.is_absolute() or path.startswith((".", "~"))) and not local.expanduser().exists():
        raise FtdistError(f"model.path={path} does not exist; point it at a Hugging Face model folder")
    try:
        return AutoModelForCausalLM.from_pretrained(
            path, use_safetensors=True, trust_remote_code=trust_remote_code, dtype=torch.float32, **kwargs
        )
    except OSError as error:
        raise FtdistError(f"could not load model.path={path}: {error}") from None


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, total
