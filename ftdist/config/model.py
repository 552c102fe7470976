"""`model:` which network to train, where its weights and tokenizer come from."""

from __future__ import annotations

from typing import Literal

from pydantic import PositiveInt, model_validator

from ftdist.config.base import Section


class ScratchModel(Section):
    """A model built from a config, with random weights (pre-training, tests)."""

    family: Literal["gpt2", "llama"] = "gpt2"
    """`gpt2`: pre-norm GPT-2 block with learned positions; `llama`: RMSNorm, RoPE, SwiGLU, grouped KV heads."""
    n_layer: PositiveInt = 4
    """Number of transformer blocks."""
    n_head: PositiveInt = 4
    """Attention heads per block."""
    n_kv_head: PositiveInt | None = None
    """Key/value heads (llama only); defaults to `n_head`."""
    n_embd: PositiveInt = 64
    """Hidden size."""
    intermediate_size: PositiveInt | None = None
    """MLP width; defaults to 4 * n_embd (gpt2) or about 8/3 * n_embd (llama)."""
    max_positions: PositiveInt | None = None
    """Longest sequence the position embedding covers; defaults to `data.seq_len`."""
    dropout: float = 0.0
    """Dropout on embeddings, attention and residual paths."""
    activation: str = "relu"
    """MLP activation for gpt2 (`relu` as in the tiny SQL GPT paper, `gelu_new` as in GPT-2)."""
    tie_embeddings: bool = False
    """Share the input embedding with the output head."""

    @model_validator(mode="after")
    def _heads_divide_width(self) -> ScratchModel:
        if self.n_embd % self.n_head:
            raise ValueError(
                f"model.scratch.n_embd={self.n_embd} is not divisible by model.scratch.n_head={self.n_head}; "
                "pick a head count that divides the hidden size"
            )
        if self.n_kv_head is not None and self.n_head % self.n_kv_head:
            raise ValueError(
                f"model.scratch.n_head={self.n_head} is not a multiple of model.scratch.n_kv_head={self.n_kv_head}"
            )
        return self


class ModelConfig(Section):
    """Where the model comes from: a pretrained folder / hub id (`path`) or a config (`scratch`)."""

    path: str | None = None
    """A local Hugging Face folder or hub id. Leave empty to build `scratch` with random weights."""
    gguf_file: str | None = None
    """A GGUF file inside `path` (or an absolute path) to load and de-quantize as the base model."""
    scratch: ScratchModel | None = None
    """Architecture for a model trained from scratch (used when `path` is empty)."""
    tokenizer: str | None = None
    """`char` builds a character vocabulary from the training text; otherwise a tokenizer folder or hub id.
    Defaults to `path` for pretrained models and `char` for scratch models."""
    trust_remote_code: bool = False
    """Allow model code from the model folder to run. Off unless you trust its source."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelConfig:
        if self.path is None and self.scratch is None and self.gguf_file is None:
            self.scratch = ScratchModel()
        if self.gguf_file is not None and self.scratch is not None:
            raise ValueError("model.gguf_file and model.scratch are both set; a GGUF base is pretrained, remove one")
        if self.path is not None and self.scratch is not None:
            raise ValueError(
                "model.path and model.scratch are both set; use model.path to start from pretrained weights "
                "or model.scratch to build a new model, not both"
            )
        return self

    @property
    def tokenizer_source(self) -> str:
        if self.tokenizer:
            return self.tokenizer
        if self.gguf_file is not None:
            return "gguf"  # the tokenizer packed in the GGUF file
        return self.path if self.path is not None else "char"
