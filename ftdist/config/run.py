"""`RunConfig`: the whole run, one section per concern, plus the checks that span sections."""

from __future__ import annotations

import warnings
from typing import Literal

from pydantic import Field, model_validator

from ftdist.config.base import Section
from ftdist.config.data import DataConfig
from ftdist.config.eval import EvalConfig, GenerationConfig
from ftdist.config.method import MethodConfig
from ftdist.config.model import ModelConfig
from ftdist.config.optim import OptimConfig, ScheduleConfig
from ftdist.config.strategy import SingleSettings, StrategyConfig
from ftdist.config.tracking import TrackingConfig
from ftdist.config.train import CheckpointConfig, TrainConfig
from ftdist.errors import FtdistWarning


class RunConfig(Section):
    """One training run. Precedence: command-line overrides > the YAML file > these defaults.

    The schema checks the file alone: nothing here reads the environment or asks what is installed. What
    depends on the job (world size, device, packages) is `ftdist.preflight`, which every launcher runs."""

    name: str = "run"
    """Run name; defaults to the config file's stem."""
    output_dir: str | None = None
    """Where the run folder goes; defaults to `runs/<name>`."""
    seed: int = 1337
    """Seed for weights, data order and dropout."""
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto"
    """`auto` picks cuda, then mps, then cpu."""
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    """`auto`: bf16 on CUDA that supports it, fp16 + grad scaler on older CUDA, fp32 on MPS and CPU."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    strategy: StrategyConfig = Field(default_factory=SingleSettings)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)

    @property
    def run_dir(self) -> str:
        return self.output_dir or f"runs/{self.name}"

    @model_validator(mode="after")
    def _method_matches_model(self) -> RunConfig:
        if self.method.name == "pretrain" and (self.model.path is not None or self.model.gguf_file is not None):
            raise ValueError(
                f"method: pretrain trains a new model from model.scratch, but model.path={self.model.path!r} is set; "
                "use method: full to fine-tune those weights, or remove model.path"
            )
        return self

    @model_validator(mode="after")
    def _objective_matches_data(self) -> RunConfig:
        """Preference methods read preference rows, and only they do; a reward model does not generate."""
        preference, recipe = self.method.objective != "sft", self.data.recipe
        if preference and recipe != "preference":
            raise ValueError(
                f"method: {self.method.name} trains on preference rows, but data.recipe={recipe}; set data.recipe: "
                "preference (prompt/chosen/rejected, or prompt/completion/label for kto)"
            )
        if recipe == "preference" and not preference:
            raise ValueError(
                f"data.recipe: preference gives chosen/rejected rows, which method: {self.method.name} cannot train "
                "on; use method: dpo, kto or reward (with method.finetuning: full, lora or qlora)"
            )
        if self.method.objective == "reward" and (self.eval.prompts or self.eval.tasks):
            raise ValueError(
                "method: reward trains a scorer, which cannot generate text for eval.prompts or eval.tasks; remove "
                "them, and score with `ftdist eval --task score --reward-model RUN` instead"
            )
        return self

    @model_validator(mode="after")
    def _resolve_activation_checkpointing(self) -> RunConfig:
        if self.strategy.activation_checkpointing is None:  # memory is the point of QLoRA
            self.strategy.activation_checkpointing = self.method.weights == "qlora"
        return self

    @model_validator(mode="after")
    def _schedule_fits_run(self) -> RunConfig:
        """A warmup as long as the run (a smoke test, `train.max_steps=2`) is shortened so the run still reaches
        its peak learning rate, with a note: refusing it would make every short trial edit two keys."""
        warmup, steps = self.schedule.warmup_steps, self.train.max_steps
        if 0 < steps <= warmup:
            self.schedule.warmup_steps = steps - 1
            warnings.warn(
                f"schedule.warmup_steps={warmup} is not below train.max_steps={steps}; warming up for {steps - 1} "
                "step(s) instead, so the learning rate reaches its peak",
                FtdistWarning,
                stacklevel=2,
            )
        return self

    @model_validator(mode="after")
    def _quantized_base_is_not_sharded(self) -> RunConfig:
        """A bitsandbytes-quantized base runs whole on every process: only `single` and `ddp` are tested with it.

        ZeRO and FSDP would have to partition the packed 4/8-bit weights (they need a quantized-storage dtype
        that ftdist does not set up); DeepSpeed stages 1-2 do not partition frozen weights but are untested here.
        """
        strategy = self.strategy
        if self.method.weights != "qlora" or strategy.name in ("single", "ddp"):
            return self
        where = f"strategy.name={strategy.name}" + (
            f" with zero_stage={strategy.zero_stage}" if strategy.name == "deepspeed" else ""
        )
        raise ValueError(
            f"method: qlora keeps the base model quantized (bitsandbytes 4/8-bit) on every process, which {where} "
            "cannot shard here; use strategy: single or ddp with QLoRA, or method: lora (16-bit base) with fsdp or "
            "deepspeed"
        )
