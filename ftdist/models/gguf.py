"""GGUF-packaged bases (llama.cpp files): de-quantized once by transformers and cached as a plain HF folder.

transformers can load a GGUF file directly (`from_pretrained(dir, gguf_file=...)`), but de-quantizing takes
tens of seconds and the tokenizer another ten; every later load, every adapter run and `ftdist merge` reads the
cached safetensors folder instead. The cache lives outside the repository (`$FTDIST_CACHE`, default
`~/.cache/ftdist/gguf/`): a 135M model is about 0.5 GB in fp32.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from ftdist.errors import FtdistError
from ftdist.models.saving import save_hf
from ftdist.staging import staged_folder


def cache_root() -> Path:
    return Path(os.environ.get("FTDIST_CACHE", Path.home() / ".cache" / "ftdist"))


def gguf_source(path: str | None, gguf_file: str) -> Path:
    """The GGUF file named by `model.path` (a folder, may be empty for an absolute file) and `model.gguf_file`."""
    file = Path(gguf_file).expanduser()
    if not file.is_absolute():
        file = Path(path or ".").expanduser() / file
    if not file.is_file():
        raise FtdistError(
            f"model.gguf_file={gguf_file} does not exist (looked for {file}); point model.path at the folder that "
            "holds it, or give model.gguf_file as an absolute path"
        )
    return file.resolve()


def converted_folder(path: str | None, gguf_file: str) -> Path:
    """An HF folder (fp32 safetensors + tokenizer) with the GGUF's weights, converted on first use."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    file = gguf_source(path, gguf_file)
    stat = file.stat()
    key = hashlib.sha256(f"{file}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    target = cache_root() / "gguf" / f"{file.stem}-{key}"
    if (target / "config.json").exists():
        return target
    tokenizer = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
    if tokenizer.pad_token is None:  # older transformers leave it unset; ChatML models pad with eos
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype=torch.float32)
    # The weights are already de-quantized to fp32; transformers still marks the model as GGUF-quantized and
    # refuses to save it. Drop that marker so the result is a plain model folder.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    intact = f"The GGUF file {file} is untouched; set FTDIST_CACHE to a folder with more room"
    with staged_folder(target, intact=intact, replace=False) as staging:  # another process may convert it first
        save_hf(model, staging)
        tokenizer.save_pretrained(staging)
    return target
