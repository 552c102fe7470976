"""Sample text from a run or a model folder (`ftdist generate`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from ftdist.config.eval import GenerationConfig
from ftdist.errors import FtdistError


def resolve_model_folder(run_or_model: str | Path) -> Path:
    """A run folder means its `final/` (or, before it finished, its latest checkpoint); else the folder itself."""
    path = Path(run_or_model)
    if (path / "final" / "config.json").exists():
        return path / "final"
    latest = path / "checkpoints" / "latest"
    if latest.exists():
        return path / "checkpoints" / latest.read_text().strip()
    if (path / "config.json").exists():
        return path
    raise FtdistError(
        f"{run_or_model} is neither a run folder (with final/ or checkpoints/) nor a model folder "
        "(with config.json); pass e.g. runs/tiny_sql_gpt"
    )


def load_for_generation(
    run_or_model: str | Path, device: torch.device
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    folder = resolve_model_folder(run_or_model)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True, dtype=torch.float32).to(device)
    return model.eval(), tokenizer


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    settings: GenerationConfig,
    device: torch.device | None = None,
) -> str:
    """The prompt followed by `max_new_tokens` sampled tokens (greedy when temperature is 0)."""
    device = device or next(model.parameters()).device
    ids = torch.tensor([tokenizer(prompt, add_special_tokens=False)["input_ids"]], device=device)  # (1, T)
    if ids.shape[1] == 0:
        raise FtdistError("the prompt is empty after tokenization; give at least one character")
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    warpers = LogitsProcessorList()
    if settings.temperature > 0:
        warpers.append(TemperatureLogitsWarper(settings.temperature))
        warpers.append(TopPLogitsWarper(settings.top_p))
    window = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    # A sliding window, as nanoGPT samples: models with learned absolute positions (the tiny GPT's context is
    # 32) cannot see past their window, and transformers' generate() does not crop the context for them.
    for _ in range(settings.max_new_tokens):
        context = ids[:, -window:] if window else ids
        logits = model(input_ids=context, use_cache=False).logits[:, -1, :].float()  # (1, V)
        if settings.temperature > 0:
            probs = torch.softmax(warpers(ids, logits), dim=-1)
            next_id = torch.multinomial(probs, 1, generator=generator)  # (1, 1)
        else:
            next_id = logits.argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    return tokenizer.decode(ids[0], skip_special_tokens=True)
