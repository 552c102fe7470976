"""Sample text from a run or a model folder (`ftdist generate`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from ftdist.config.eval import GenerationConfig
from ftdist.errors import FtdistError
from ftdist.export import load_trained, resolve_model_folder, run_config_for
from ftdist.models import check_safetensors_folder, warn_remote_code


def load_for_generation(
    run_or_model: str | Path, device: torch.device
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The run's model ready to sample: a full model, or an adapter on its base (no merge needed). A folder
    someone else made is checked first: pickle-only weights are refused, custom code is named and not run."""
    folder = resolve_model_folder(run_or_model)
    check_safetensors_folder(folder)
    config = run_config_for(folder)
    warn_remote_code(folder, bool(config and config.model.trust_remote_code))
    model, tokenizer, _ = load_trained(run_or_model, device)
    return model, tokenizer


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
