"""What a strategy needs to make the run's model arrive: the model loaded for real, or its empty skeleton.

Why a recipe and not a model: under FSDP2 and DDP only rank 0 reads the weights (`Strategy.materialize` decides
who reads); the other ranks build the same architecture without storage (the meta device) and receive their
shares from rank 0. Both paths must give the same module tree, parameter names, dtypes and `requires_grad`, with
the method (adapters) applied, which is what this file keeps in one place. Nothing here knows about ranks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.models import base_folder, head_options, model_class, model_from

_UNRESOLVED = object()


@dataclass
class ModelRecipe:
    """The run's model: its base folder, the dtype its base loads in, and the method that turns it into what
    trains. `folder` is resolved once (resolving a scratch base is collective: every rank must ask once)."""

    config: RunConfig
    tokenizer: PreTrainedTokenizerBase
    method: type  # ftdist.methods.base.Method
    dtype: torch.dtype = torch.float32
    _folder: object = field(default=_UNRESOLVED, repr=False)

    @classmethod
    def for_run(cls, config: RunConfig, tokenizer: PreTrainedTokenizerBase, method: type, precision) -> ModelRecipe:
        """The recipe of a run: the base in the dtype the method asks for under this run's precision."""
        return cls(config, tokenizer, method, method.base_dtype(precision))

    @property
    def folder(self) -> Path | None:
        """The HF folder the base loads from; None for a model built fresh from `model.scratch`."""
        if self._folder is _UNRESOLVED:
            self._folder = base_folder(self.config, self.tokenizer)
        return self._folder  # type: ignore[return-value]

    @property
    def reads_weights(self) -> bool:
        """Whether building reads weights from files (so one rank can read them for all); a fresh model does not,
        and a quantized base is quantized while it loads (no skeleton of it can be built empty)."""
        return self.folder is not None and self.config.method.weights != "qlora"

    def weight_files(self) -> list[Path]:
        """The safetensors files `build` reads (none for a fresh model)."""
        return sorted(self.folder.glob("*.safetensors")) if self.folder is not None else []

    def build(self) -> nn.Module:
        """The model with its weights read from `folder` (or seeded fresh), the method applied."""
        return self.method.apply(model_from(self.config, self.tokenizer, self.folder, self.dtype), self.config)

    def skeleton(self) -> nn.Module:
        """The same model with every parameter and buffer on the meta device (no storage), the method applied:
        what a rank that receives its weights from rank 0 builds. Requires `reads_weights`."""
        trust = self.config.model.trust_remote_code
        hf_config = AutoConfig.from_pretrained(self.folder, trust_remote_code=trust)
        for key, value in head_options(self.config, self.tokenizer).items():
            setattr(hf_config, key, value)
        with torch.device("meta"):
            model = model_class(self.config).from_config(hf_config, dtype=self.dtype, trust_remote_code=trust)
            return self.method.apply(model, self.config)
