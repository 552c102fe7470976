"""The interface of a training method, and the one state filter every strategy applies to checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

# Wrappers that insert a name component into parameter names without changing the model's own names:
# activation checkpointing's wrapper and torch.compile's. Checkpoints use the model's own names.
WRAPPER_PREFIXES = ("_checkpoint_wrapped_module.", "_orig_mod.")


def clean_name(name: str) -> str:
    for prefix in WRAPPER_PREFIXES:
        name = name.replace(prefix, "")
    return name


@dataclass(frozen=True)
class StateFilter:
    """Which of the model's tensors a checkpoint holds: all of them, or only the trainable parameters.

    Why trainable-only for adapter methods: the base is frozen and is rebuilt identically from its source on
    resume and export (`model.path`, the cached GGUF conversion, or the run's saved scratch base), so writing
    it into every checkpoint would cost gigabytes per step for nothing; and a 4-bit base's state (packed bytes
    plus quantization statistics) does not load back into a freshly quantized model anyway.
    """

    trainable_only: bool = False

    def names(self, model: nn.Module) -> set[str] | None:
        """The parameter names a checkpoint holds (the model's own names), or None for the whole state dict."""
        if not self.trainable_only:
            return None
        return {clean_name(name) for name, p in model.named_parameters() if p.requires_grad}

    def select(self, state: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
        """`state` (a state dict in the model's names) cut down to what a checkpoint holds."""
        keep = self.names(model)
        return state if keep is None else {key: value for key, value in state.items() if key in keep}

    def load_into(self, model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
        """Copy a checkpoint's tensors into `model`; every tensor the filter keeps must be there, nothing else."""
        keep = self.names(model)
        if keep is None:
            missing, unexpected = model.load_state_dict(state, strict=False)
            tied = set(
                getattr(model, "all_tied_weights_keys", None) or getattr(model, "_tied_weights_keys", None) or []
            )
            missing = [key for key in missing if key not in tied]
        else:
            missing, unexpected = sorted(keep - set(state)), sorted(set(state) - keep)
        if missing or unexpected:
            from ftdist.errors import FtdistError

            raise FtdistError(
                f"{source} does not fit this model (missing {missing[:3]}, unexpected {unexpected[:3]}); "
                "was it written by a different model or method?"
            )
        if keep is not None:
            parameters = {clean_name(name): p for name, p in model.named_parameters()}
            with torch.no_grad():
                for name, tensor in state.items():
                    parameters[name].copy_(tensor)


class Method:
    """How the weights train. Subclasses set `state_filter` and override what they need."""

    state_filter: ClassVar[StateFilter] = StateFilter()

    @classmethod
    def apply(cls, model: nn.Module, config) -> nn.Module:
        """The model to train (called once, before the strategy wraps it)."""
        raise NotImplementedError

    @classmethod
    def base_dtype(cls, precision) -> torch.dtype:
        """The dtype the base loads in under `precision` (a Precision). fp32: every parameter trains,
        and trained parameters keep fp32 masters whatever the compute dtype."""
        return torch.float32

    @classmethod
    def preflight(cls, config, world) -> list[str]:
        """Problems of running this method in `world` (ftdist.preflight.World), one sentence each with the fix."""
        return []
