"""Model shapes from a Hugging Face `config.json` alone, or from a small shipped catalogue.

Hub ids cannot be fetched on a login node (or here), so the architectures the studies and the shipped configs
use are written out below with the fields of their public `config.json` files. A local folder's own
`config.json` always wins over the catalogue; a plan says which one it used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ftdist.errors import FtdistError
from ftdist.planner.shape import ModelShape

_LLAMA2 = {"model_type": "llama", "vocab_size": 32000, "tie_word_embeddings": False}
_GPT2 = {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "tie_word_embeddings": True}

# Hub id -> the fields of its public config.json that fix the shape (copied from the files, not derived).
CATALOGUE: dict[str, dict[str, Any]] = {
    "meta-llama/Llama-2-7b-hf": {
        **_LLAMA2,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    },
    "meta-llama/Llama-2-13b-hf": {
        **_LLAMA2,
        "hidden_size": 5120,
        "intermediate_size": 13824,
        "num_hidden_layers": 40,
        "num_attention_heads": 40,
        "num_key_value_heads": 40,
    },
    "meta-llama/Llama-2-70b-hf": {
        **_LLAMA2,
        "hidden_size": 8192,
        "intermediate_size": 28672,
        "num_hidden_layers": 80,
        "num_attention_heads": 64,
        "num_key_value_heads": 8,
    },
    "codellama/CodeLlama-7b-hf": {
        **_LLAMA2,
        "vocab_size": 32016,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
    },
    "openlm-research/open_llama_3b": {
        **_LLAMA2,
        "hidden_size": 3200,
        "intermediate_size": 8640,
        "num_hidden_layers": 26,
        "num_attention_heads": 32,
    },
    "HuggingFaceTB/SmolLM2-135M": {
        "model_type": "llama",
        "vocab_size": 49152,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "tie_word_embeddings": True,
    },
    "openai-community/gpt2": {**_GPT2, "n_embd": 768, "n_layer": 12, "n_head": 12},
    "openai-community/gpt2-medium": {**_GPT2, "n_embd": 1024, "n_layer": 24, "n_head": 16},
    "openai-community/gpt2-large": {**_GPT2, "n_embd": 1280, "n_layer": 36, "n_head": 20},
    "bigscience/bloom-3b": {
        "model_type": "bloom",
        "vocab_size": 250880,
        "hidden_size": 2560,
        "n_layer": 30,
        "n_head": 32,
        "tie_word_embeddings": True,
    },
    "tiiuae/falcon-rw-1b": {
        "model_type": "falcon",
        "vocab_size": 50304,
        "hidden_size": 2048,
        "num_hidden_layers": 24,
        "num_attention_heads": 32,
        "multi_query": False,
        "alibi": True,
        "bias": True,
        "tie_word_embeddings": True,
    },
}
# Other spellings of the same models (the instruct/chat variants share the base's shape).
ALIASES = {
    "gpt2": "openai-community/gpt2",
    "gpt2-medium": "openai-community/gpt2-medium",
    "gpt2-large": "openai-community/gpt2-large",
    "meta-llama/Llama-2-7b-chat-hf": "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-13b-chat-hf": "meta-llama/Llama-2-13b-hf",
    "meta-llama/Llama-2-70b-chat-hf": "meta-llama/Llama-2-70b-hf",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "HuggingFaceTB/SmolLM2-135M",
}

FAMILY_OF_TYPE = {
    "llama": "llama",
    "mistral": "llama",
    "qwen2": "llama",
    "gpt2": "gpt2",
    "falcon": "falcon",
    "bloom": "falcon",
}


def shape_from_hf_config(fields: dict[str, Any], name: str, source: str) -> ModelShape:
    """A `ModelShape` from config.json fields (the key names of llama, gpt2, falcon and bloom configs)."""
    model_type = fields.get("model_type", "")
    family = FAMILY_OF_TYPE.get(model_type)
    if family is None:
        raise ValueError(
            f"model_type {model_type!r} is not one the planner knows ({', '.join(sorted(FAMILY_OF_TYPE))})"
        )

    def first(*keys: str, default: Any = None) -> Any:
        for key in keys:
            if fields.get(key) is not None:
                return fields[key]
        if default is None:
            raise ValueError(f"config.json has none of {', '.join(keys)}")
        return default

    hidden = int(first("hidden_size", "n_embd", "d_model"))
    heads = int(first("num_attention_heads", "n_head"))
    if model_type == "falcon" and not fields.get("new_decoder_architecture"):
        kv_heads = 1 if fields.get("multi_query", True) else heads
    else:
        kv_heads = int(first("num_key_value_heads", "num_kv_heads", default=heads))
    default_mlp = 4 * hidden
    return ModelShape(
        name=name,
        family=family,
        vocab=int(first("vocab_size")),
        hidden=hidden,
        layers=int(first("num_hidden_layers", "n_layer")),
        heads=heads,
        kv_heads=kv_heads,
        intermediate=int(first("intermediate_size", "n_inner", "ffn_hidden_size", default=default_mlp)),
        tied=bool(fields.get("tie_word_embeddings", family != "llama")),
        positions=int(first("n_positions", default=1024)) if family == "gpt2" else 0,
        embedding_norm=model_type == "bloom",
        file_bytes=_file_bytes(fields, family),
        source=source,
    )


def _file_bytes(fields: dict[str, Any], family: str) -> int:
    """Bytes per parameter the checkpoint stores: config.json's `dtype` (`torch_dtype` before transformers 5);
    unsaid, 4 for GPT-2 (OpenAI's checkpoints are fp32) and 2 for the rest (16-bit hub releases)."""
    dtype = str(fields.get("dtype") or fields.get("torch_dtype") or "")
    if dtype:
        return 4 if dtype.endswith("float32") else 2
    return 4 if family == "gpt2" else 2


def catalogue_shape(model_id: str) -> ModelShape | None:
    """The shipped shape for a hub id (or an alias, or a GGUF file named after it), or None."""
    key = ALIASES.get(model_id, model_id)
    if key not in CATALOGUE:
        stem = Path(model_id).name.lower()
        matches = [k for k in CATALOGUE if stem.startswith(k.split("/")[-1].lower())]
        if not matches:
            return None
        key = max(matches, key=len)  # gpt2-large before gpt2
    return shape_from_hf_config(CATALOGUE[key], key, "catalogue")


def read_config_json(path: Path, name: str) -> ModelShape:
    """A local `config.json` as a shape; the error names the path and why it could not be read."""
    try:
        fields = json.loads(path.read_text())
    except OSError as error:
        raise FtdistError(
            f"cannot read the model config {path}: {error.strerror}; point model.path at a "
            "Hugging Face folder with a config.json"
        ) from None
    except json.JSONDecodeError as error:
        raise FtdistError(
            f"cannot read the model config {path}: not JSON ({error.msg} at line {error.lineno}); "
            "it should be a Hugging Face config.json"
        ) from None
    try:
        return shape_from_hf_config(fields, name, str(path))
    except ValueError as error:
        raise FtdistError(f"cannot plan for the model config {path}: {error}") from None
