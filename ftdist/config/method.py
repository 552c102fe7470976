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


Finetuning = Literal["full", "lora", "qlora"]
PREFERENCE_METHODS = ("dpo", "kto", "reward")  # train on `data.recipe: preference` rows; the rest on tokens


class ReferenceChoice(Section):
    """Where a preference method's reference log-probabilities come from."""

    reference: Literal["auto", "adapters", "precompute"] = "auto"
    """`adapters`: the same model with its adapters disabled (LoRA/QLoRA: no second copy); `precompute`: the
    starting model scores every row once before the first step, and the scores are kept in the run folder
    (no second copy either; any strategy). `auto`: adapters when the method trains adapters, else precompute."""


class DpoSettings(ReferenceChoice):
    """`method.dpo`: Direct Preference Optimization (Rafailov et al., 2023) and its IPO variant."""

    beta: PositiveFloat = 0.1
    """How far the policy may move from the reference: the temperature of the implicit reward."""
    loss: Literal["sigmoid", "ipo"] = "sigmoid"
    """`sigmoid`: DPO's -log sigmoid(beta * margin); `ipo`: (margin / tokens - 1 / (2 beta))^2, with the
    log-ratios averaged over each response's tokens as TRL and the IPO authors do."""
    label_smoothing: float = Field(default=0.0, ge=0.0, lt=0.5)
    """`sigmoid` only: the share of pairs assumed mislabelled: conservative DPO (Mitchell, 2023; TRL's `sigmoid`
    before 1.0, which TRL 1.x no longer offers). 0 is plain DPO."""

    @model_validator(mode="after")
    def _smoothing_needs_sigmoid(self) -> DpoSettings:
        if self.label_smoothing and self.loss != "sigmoid":
            raise ValueError(
                f"method.dpo.label_smoothing={self.label_smoothing} applies to loss: sigmoid only; remove it, or use "
                "method.dpo.loss=sigmoid"
            )
        return self


class KtoSettings(ReferenceChoice):
    """`method.kto`: Kahneman-Tversky Optimization (Ethayarajh et al., 2024) on unpaired, labelled responses."""

    beta: PositiveFloat = 0.1
    """The temperature of the implicit reward, as DPO's."""
    desirable_weight: PositiveFloat = 1.0
    """Weight of the loss on responses labelled true."""
    undesirable_weight: PositiveFloat = 1.0
    """Weight of the loss on responses labelled false (raise it when they are the rarer kind)."""


class RewardSettings(Section):
    """`method.reward`: a reward model, a sequence-classification head with one output, trained on pairs with
    the Bradley-Terry loss -log sigmoid(r_chosen - r_rejected)."""

    center_rewards_coefficient: NonNegativeFloat = 0.0
    """Adds coefficient * mean((r_chosen + r_rejected)^2), which keeps the rewards centred on 0
    (Eisenstein et al., 2023); 0 leaves it out, as TRL's default."""


class MethodConfig(NamedSection):
    """The training method. Write `method: lora` or `method: {name: qlora, lora: {r: 16}}`; for preference
    tuning `method: {name: dpo, finetuning: lora}`."""

    name: Literal["pretrain", "full", "lora", "qlora", "dpo", "kto", "reward"] = "pretrain"
    """`pretrain`: every weight of a new `model.scratch` model; `full`: every weight of `model.path`;
    `lora`: low-rank adapters on a frozen base; `qlora`: LoRA on a base quantized to 4 (or 8) bits.
    Preference tuning on `data.recipe: preference` rows: `dpo` (pairs), `kto` (responses labelled true or
    false), `reward` (a reward model trained on pairs); `method.finetuning` says which weights train."""
    finetuning: Finetuning | None = None
    """`dpo`, `kto` and `reward`: which weights train: `full` (default), `lora` or `qlora`."""
    dpo: DpoSettings = Field(default_factory=DpoSettings)
    """Settings of `method: dpo`."""
    kto: KtoSettings = Field(default_factory=KtoSettings)
    """Settings of `method: kto`."""
    reward: RewardSettings = Field(default_factory=RewardSettings)
    """Settings of `method: reward`."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """Adapter settings for `lora` and `qlora`."""
    quantization: QuantizationSettings = Field(default_factory=QuantizationSettings)
    """Quantization of the frozen base for `qlora`."""

    @model_validator(mode="after")
    def _finetuning_matches_method(self) -> MethodConfig:
        if self.name in PREFERENCE_METHODS:
            # through __dict__: assigning would validate the model again (validate_assignment), recursively
            self.__dict__["finetuning"] = self.finetuning or "full"
        elif self.finetuning is not None:
            raise ValueError(
                f"method.finetuning is set but method.name={self.name} is not a preference method; it applies to "
                f"{', '.join(PREFERENCE_METHODS)}. Remove method.finetuning (method: {self.finetuning} trains "
                "those weights on tokens)"
            )
        for section, default in (("dpo", DpoSettings()), ("kto", KtoSettings()), ("reward", RewardSettings())):
            if self.name != section and getattr(self, section) != default:
                raise ValueError(
                    f"method.{section} is set but method.name={self.name}; use method: {section}, or remove "
                    f"method.{section}"
                )
        if self.name in ("dpo", "kto") and getattr(self, self.name).reference == "adapters" and not self.uses_adapters:
            raise ValueError(
                f"method.{self.name}.reference=adapters needs adapters to disable, but method.finetuning="
                f"{self.finetuning} trains every weight; use method.finetuning=lora, or reference: precompute"
            )
        return self

    @model_validator(mode="after")
    def _fill_method_defaults(self) -> MethodConfig:
        defaults = LORA_DEFAULTS.get(self.weights)
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
        if self.weights != "qlora" and self.quantization != QuantizationSettings():
            raise ValueError(
                f"method.quantization is set but method.name={self.name} does not quantize the base; "
                "use method: qlora, or remove method.quantization"
            )
        return self

    @property
    def weights(self) -> str:
        """Which weights train and how: `pretrain`, `full`, `lora` or `qlora` (a preference method's
        `finetuning`). `ftdist.methods` keys the model's preparation by this name."""
        return self.finetuning if self.name in PREFERENCE_METHODS else self.name

    @property
    def objective(self) -> str:
        """What the loss is: `sft` (next-token cross-entropy) for pretrain/full/lora/qlora, else the name."""
        return self.name if self.name in PREFERENCE_METHODS else "sft"

    @property
    def sequences_per_row(self) -> int:
        """Sequences one row of a micro-batch puts through the model: 2 for a preference row (chosen and
        rejected; KTO's response and its KL sequence), else 1."""
        return 1 if self.objective == "sft" else 2

    @property
    def reference(self) -> str | None:
        """`adapters` or `precompute` for dpo and kto (auto resolved); None for methods without a reference."""
        if self.name not in ("dpo", "kto"):
            return None
        choice = getattr(self, self.name).reference
        if choice == "auto":
            return "adapters" if self.uses_adapters else "precompute"
        return choice

    @property
    def uses_adapters(self) -> bool:
        return self.weights in ("lora", "qlora")
