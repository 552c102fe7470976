"""`eval:` and `generation:` what happens after training, and how text is sampled."""

from __future__ import annotations

from pydantic import NonNegativeFloat, PositiveInt, field_validator

from ftdist.config.base import Section


class EvalConfig(Section):
    """End-of-run evaluation."""

    prompts: list[str] = []
    """Prompts to sample from the final model; the results go to `<output_dir>/samples.txt`."""


class GenerationConfig(Section):
    """Sampling controls for `ftdist generate` and `eval.prompts` (the tiny SQL GPT paper used 80 / 0.7 / 0.7)."""

    max_new_tokens: PositiveInt = 80
    """Tokens to generate after the prompt."""
    temperature: NonNegativeFloat = 0.7
    """Softmax temperature; 0 means greedy decoding."""
    top_p: float = 0.7
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p."""
    seed: int = 1337
    """Sampling seed, so a generation can be repeated."""

    @field_validator("top_p")
    @classmethod
    def _top_p_in_range(cls, value: float) -> float:
        if not 0.0 < value <= 1.0:
            raise ValueError("generation.top_p must be in (0, 1], e.g. 0.9")
        return value
