"""`method: lora` and `method: qlora`: peft LoRA adapters on a frozen base.

QLoRA is LoRA on a base that `ftdist.models.quantized` loaded in 4 (or 8) bits; here it only adds peft's
`prepare_model_for_kbit_training` and pins the 4-bit layers to their training layout (`pin_4bit_layout`).
"""

from __future__ import annotations

import importlib.util
import warnings
from contextlib import contextmanager

import torch
from torch import nn

from ftdist.errors import FtdistError
from ftdist.methods.base import Method, StateFilter

# Per-architecture defaults where ftdist differs from peft's table: GPT-2 adapts every projection, as in the
# LoRA fine-tuning of gpt2-large on Bible text (peft's default is c_attn only).
DEFAULT_TARGETS = {"gpt2": ["c_attn", "c_proj", "c_fc"]}


class LoraMethod(Method):
    """Adapters train; the checkpoint holds only them (see StateFilter for why)."""

    state_filter = StateFilter(trainable_only=True)

    @classmethod
    def base_dtype(cls, precision) -> torch.dtype:
        """The frozen base in the compute dtype (bf16/fp16 where `precision` picked a 16-bit path, as peft users
        load it): it never steps, so an fp32 copy would only double its memory. fp32 where precision is fp32."""
        return precision.dtype

    @classmethod
    def apply(cls, model: nn.Module, config) -> nn.Module:
        return add_adapters(model, config)


class QLoraMethod(LoraMethod):
    """LoRA on a base that `ftdist.models.quantized` loaded in 4 (or 8) bits with bitsandbytes."""

    @classmethod
    def base_dtype(cls, precision) -> torch.dtype:
        """fp32 for what is not quantized (embeddings, norms), as before: the 4-bit layers compute in
        `method.quantization.compute_dtype`, and prepare_model_for_kbit_training upcasts the rest anyway."""
        return torch.float32

    @classmethod
    def preflight(cls, config, world) -> list[str]:
        # What the device can run (no bitsandbytes on MPS) is ftdist.device_rules, which the planner shares.
        if importlib.util.find_spec("bitsandbytes") is None:
            return ["method: qlora needs bitsandbytes; pip install bitsandbytes, or use method: lora."]
        return []


@contextmanager
def without_peft_deprecation_notice():
    """peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` property when it wraps a model; the
    FutureWarning is peft's to fix, not the user's."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        yield


def import_peft() -> None:
    """Import peft where it is used, not with this module (a launcher's preflight loads the method class, and
    peft takes seconds to import), with bitsandbytes' 4-bit CPU kernel notice silenced: peft imports
    bitsandbytes even for plain LoRA, and the notice concerns qlora only."""
    from ftdist.models.quantized import without_4bit_kernel_notice

    with without_4bit_kernel_notice():
        import peft  # noqa: F401


def add_adapters(model: nn.Module, config) -> nn.Module:
    """Freeze the base, add adapters on the target layers; returns a peft `PeftModel`."""
    import_peft()
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    settings = config.method.lora
    targets = resolve_targets(model, settings.target_modules)
    if config.method.weights == "qlora":
        # Activation checkpointing is the strategy's job (`enable_hf_activation_checkpointing`, non-reentrant, so
        # peft's input-grad hook is not needed); peft would call transformers' deprecated name for it.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora_config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        bias=settings.bias,
        modules_to_save=settings.modules_to_save or None,
        fan_in_fan_out=_uses_conv1d(model, targets),
        # SEQ_CLS: a reward model's new score head trains in full beside the adapters (peft's modules_to_save)
        task_type="SEQ_CLS" if config.method.objective == "reward" else "CAUSAL_LM",
    )
    with without_peft_deprecation_notice():
        model = get_peft_model(model, lora_config)  # autocast_adapter_dtype: 16-bit adapters are made fp32
    _trainable_in_fp32(model)
    pin_4bit_layout(model)
    return model


def _trainable_in_fp32(model: nn.Module) -> None:
    """fp32 masters for everything that trains on a 16-bit base: peft makes its adapters fp32, but copies of base
    modules (`modules_to_save`) keep the base's dtype, and an optimizer stepping bf16 weights loses small updates."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.is_floating_point() and parameter.dtype != torch.float32:
            parameter.data = parameter.data.float()


def resolve_targets(model: nn.Module, requested: list[str] | str | None) -> list[str] | str:
    """The configured targets, checked against the model, or the architecture's default."""
    import_peft()
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    model_type = getattr(model.config, "model_type", "")
    if requested == "all-linear":
        return requested
    if requested is None:
        requested = DEFAULT_TARGETS.get(model_type) or TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(
            model_type
        )
        if requested is None:
            raise FtdistError(
                f"no default LoRA targets for model type {model_type!r}; set method.lora.target_modules to some "
                f"of its linear layers ({', '.join(linear_layer_names(model))}) or to all-linear"
            )
    available = linear_layer_names(model)
    missing = [name for name in requested if name not in available]
    if missing:
        raise FtdistError(
            f"method.lora.target_modules: {', '.join(missing)} match no linear layer of this {model_type} model; "
            f"its linear layers are: {', '.join(sorted(available))} (or use all-linear)"
        )
    return list(requested)


def linear_layer_names(model: nn.Module) -> set[str]:
    """Last name component of every linear-like layer (nn.Linear, its bitsandbytes subclasses, GPT-2's Conv1D)."""
    from transformers.pytorch_utils import Conv1D

    return {name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear | Conv1D)}


def _uses_conv1d(model: nn.Module, targets: list[str] | str) -> bool:
    """GPT-2's Conv1D stores weights as (in, out); peft must know, or the adapter is transposed."""
    from transformers.pytorch_utils import Conv1D

    if targets == "all-linear":
        return False
    return any(isinstance(m, Conv1D) and name.rsplit(".", 1)[-1] in targets for name, m in model.named_modules())


def pin_4bit_layout(model: nn.Module) -> None:
    """Keep every bitsandbytes 4-bit layer in its training layout, so evaluation cannot break training.

    Why: on CPUs with AVX512-BF16, `bnb.nn.Linear4bit.forward` in eval mode with an input that needs no
    gradient (exactly `model.eval()` + `torch.no_grad()`) repacks its weight in place into an inference-only
    layout (`quant_state.packing_format_for_cpu`), chosen by the per-layer flag `support_avx512bf16_for_cpu`.
    After that, backward has no autograd kernel (LoRA gradients are None, the loss goes flat) and peft's
    merge de-quantizes the repacked bytes wrongly (bitsandbytes 0.50.2,
    reproduced in tests/unit/methods/test_qlora_cpu_trap.py).
    Clearing the flag on our own layer instances keeps them on the regular path; a layer already repacked is
    restored with bitsandbytes' inverse conversion. No library code is changed.
    """
    try:
        from bitsandbytes.functional import _convert_weight_packed_for_cpu_inverse
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return
    for module in model.modules():
        if isinstance(module, Linear4bit):
            module.support_avx512bf16_for_cpu = False
            weight = module.weight
            if getattr(weight.quant_state, "packing_format_for_cpu", False):
                weight.data, weight.quant_state = _convert_weight_packed_for_cpu_inverse(
                    weight.data, weight.quant_state
                )
