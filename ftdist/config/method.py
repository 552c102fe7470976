"""`method:` how the weights are trained: from scratch, all of them, or through LoRA adapters (optionally on a
4-bit / 8-bit quantized base: QLoRA)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, PositiveFloat, PositiveInt, model_validator

from ftdist.config.base import NamedSection, Section

# Defaults per method. QLoRA's follow "Fine-tuning Llama-2-7B for SQL with QLoRA" (r=64, alpha=16, dropout=0.1);
# LoRA's follow the peft/Hu et al. common choice (r=8, alpha=16, dropout=0.05).
LORA_DEFAULTS = {"lora": {"r": 8, "alpha": 16.0, "dropout": 0.05}, "qlora": {"r": 64, "alpha": 16.0, "dropout": 0.1}}


class LoraSettings(Section):
    """LoRA adapters (peft). Unset values take the method's defaults (see `LORA_DEFAULTS`)."""

    r: PositiveInt | None = None
    """Adapter rank. Default 8 for `lora`, 64 for `qlora`."""
    alpha: PositiveFloat | None = None
    """Scaling numerator: the update is (alpha / r) * B @ A. Default 16."""
    dropout: NonNegativeFloat | None = None
    """Dropout on the adapter input. Default 0.05 for `lora`, 0.1 for `qlora`."""
    target_modules: list[str] | Literal["all-linear"] | None = None
    """Module names to adapt (suffixes, e.g. [q_proj, v_proj]), `all-linear`, or empty for the architecture's
    default: q_proj/v_proj for Llama-like models, c_attn/c_proj/c_fc for GPT-2."""
    bias: Literal["none", "all", "lora_only"] = "none"
    """Which biases train alongside the adapters."""
    modules_to_save: list[str] = Field(default_factory=list)
    """Modules trained in full and saved with the adapter (e.g. [lm_head] after resizing the vocabulary)."""

    @model_validator(mode="after")
    def _dropout_is_probability(self) -> LoraSettings:
        if self.dropout is not None and self.dropout >= 1:
            raise ValueError(f"method.lora.dropout={self.dropout} must be below 1 (it is a probability)")
        return self


class QuantizationSettings(Section):
    """How `qlora` quantizes the frozen base with bitsandbytes when it loads it."""

    load_in_8bit: bool = False
    """Load the base in 8-bit (LLM.int8) instead of 4-bit."""
    quant_type: Literal["nf4", "fp4"] = "nf4"
    """4-bit data type: `nf4` (NormalFloat, the QLoRA paper's) or `fp4`."""
    double_quant: bool = True
    """Quantize the quantization constants too (saves about 0.4 bits per parameter)."""
    compute_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"
    """The dtype the 4-bit weights are de-quantized to for each matmul. `auto`: bf16 on CUDA with bf16 and on CPUs
    that multiply bf16 in hardware (AMX, AVX512-BF16), fp16 on older CUDA, else fp32: an AVX2 CPU multiplies bf16
    about 50x slower than fp32."""


class MethodConfig(NamedSection):
    """The training method. Write `method: lora` or `method: {name: qlora, lora: {r: 16}}`."""

    name: Literal["pretrain", "full", "lora", "qlora"] = "pretrain"
    """`pretrain`: every weight of a new `model.scratch` model; `full`: every weight of `model.path`;
    `lora`: low-rank adapters on a frozen base; `qlora`: LoRA on a base quantized to 4 (or 8) bits."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """Adapter settings for `lora` and `qlora`."""
    quantization: QuantizationSettings = Field(default_factory=QuantizationSettings)
    """Quantization of the frozen base for `qlora`."""

    @model_validator(mode="after")
    def _fill_method_defaults(self) -> MethodConfig:
        defaults = LORA_DEFAULTS.get(self.name)
        if defaults is not None:
            for key, value in defaults.items():
                if getattr(self.lora, key) is None:
                    setattr(self.lora, key, value)
        return self

    @model_validator(mode="after")
    def _settings_match_method(self) -> MethodConfig:
        if not self.uses_adapters and self.lora != LoraSettings():
            raise ValueError(
                f"method.lora is set but method.name={self.name} trains no adapters; use method: lora (or qlora), "
                "or remove method.lora"
            )
        if self.name != "qlora" and self.quantization != QuantizationSettings():
            raise ValueError(
                f"method.quantization is set but method.name={self.name} does not quantize the base; "
                "use method: qlora, or remove method.quantization"
            )
        return self

    @property
    def uses_adapters(self) -> bool:
        return self.name in ("lora", "qlora")
