"""Sample text from a run or a model folder (`ftdist generate`), one prompt or a batch (`ftdist eval`)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    LogitsProcessorList,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    StoppingCriteria,
    StoppingCriteriaList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from ftdist.config.eval import GenerationConfig
from ftdist.errors import FtdistError
from ftdist.models import check_safetensors_folder, warn_remote_code
from ftdist.responses import response_is_final
from ftdist.run_folder import load_trained, resolve_model_folder, run_config_for


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
    ids = torch.tensor([_encode(tokenizer, prompt)], device=device)  # (1, T)
    return tokenizer.decode(_sliding_window(model, ids, settings), skip_special_tokens=True)


@torch.no_grad()
def generate_batch(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    settings: GenerationConfig,
    device: torch.device | None = None,
    stop: list[str] | None = None,
) -> list[str]:
    """The continuation (prompt excluded) of each prompt, generated together in one left-padded batch. With
    `stop`, a row ends once `ftdist.responses.cut_response` of it is final, and the batch once all are.

    Left padding puts every prompt's last token in the same column, so one forward pass per new token serves the
    whole batch and the KV cache is shared; that is where the speed over a one-prompt loop comes from. Greedy
    decoding (temperature 0) gives each prompt the continuation it would get alone, up to float rounding.
    Models whose learned positions cannot hold prompt + new tokens fall back to the sliding window, one by one.
    """
    device = device or next(model.parameters()).device
    encoded = [_encode(tokenizer, prompt) for prompt in prompts]
    longest = max(len(ids) for ids in encoded)
    window = _window(model)
    if window and longest + settings.max_new_tokens > window:
        outputs = [_sliding_window(model, torch.tensor([ids], device=device), settings) for ids in encoded]
        return [_decode_new(tokenizer, out[len(ids) :]) for ids, out in zip(encoded, outputs)]
    pad_id = _pad_id(tokenizer)
    input_ids = torch.full((len(encoded), longest), pad_id, dtype=torch.long)  # (B, T), padded on the left
    attention_mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(encoded):
        input_ids[row, longest - len(ids) :] = torch.tensor(ids)
        attention_mask[row, longest - len(ids) :] = 1
    sampling = settings.temperature > 0
    if sampling:
        torch.manual_seed(settings.seed)  # generate() samples from the global generator
    out = model.generate(
        input_ids=input_ids.to(device),
        attention_mask=attention_mask.to(device),
        max_new_tokens=settings.max_new_tokens,
        do_sample=sampling,
        temperature=settings.temperature if sampling else None,
        top_p=settings.top_p if sampling else None,
        top_k=None,
        pad_token_id=pad_id,
        eos_token_id=tokenizer.eos_token_id,
        stopping_criteria=StoppingCriteriaList([_StopWhenFinal(tokenizer, longest, stop)]) if stop else None,
    )  # (B, T + new)
    return [_decode_new(tokenizer, row[longest:].tolist()) for row in out]


class _StopWhenFinal(StoppingCriteria):
    """Ends each row once its cut response cannot change. transformers' own `stop_strings` ends a row at the
    first stop string, which for a newline stop is right after a chat model's opening "```sql" fence; this asks
    the same function that later cuts the response. Finished rows are padded; the others' tokens are unchanged
    (greedy rows are independent, and sampling still draws for every row each step)."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, prompt_length: int, stop: list[str]) -> None:
        self.tokenizer, self.prompt_length, self.stop = tokenizer, prompt_length, stop

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([response_is_final(text, self.stop) for text in texts], device=input_ids.device)


def _sliding_window(model: PreTrainedModel, ids: torch.Tensor, settings: GenerationConfig) -> list[int]:
    """Prompt + new token ids, sampled with the context cropped to the model's window (as nanoGPT samples)."""
    generator = torch.Generator(device=ids.device).manual_seed(settings.seed)
    warpers = LogitsProcessorList()
    if settings.temperature > 0:
        warpers.append(TemperatureLogitsWarper(settings.temperature))
        warpers.append(TopPLogitsWarper(settings.top_p))
    window = _window(model)
    # Models with learned absolute positions (the tiny GPT's context is 32) cannot see past their window, and
    # transformers' generate() does not crop the context for them.
    for _ in range(settings.max_new_tokens):
        context = ids[:, -window:] if window else ids
        logits = model(input_ids=context, use_cache=False).logits[:, -1, :].float()  # (1, V)
        if settings.temperature > 0:
            probs = torch.softmax(warpers(ids, logits), dim=-1)
            next_id = torch.multinomial(probs, 1, generator=generator)  # (1, 1)
        else:
            next_id = logits.argmax(dim=-1, keepdim=True)
        ids = torch.cat([ids, next_id], dim=1)
    return ids[0].tolist()


def _encode(tokenizer: PreTrainedTokenizerBase, prompt: str) -> list[int]:
    try:
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    except Exception as error:  # tokenizers raises its own Exception type for characters outside the vocabulary
        unknown = sorted({char for char in prompt if not _encodable(tokenizer, char)})
        raise FtdistError(
            f"the tokenizer cannot encode the prompt {prompt[:60]!r}... ({error}); a character-level vocabulary built "
            f"from the training text lacks {unknown or 'some characters'}: use prompts made of the training text's "
            "characters, or a model with a real tokenizer"
        ) from None
    if not ids:
        raise FtdistError("the prompt is empty after tokenization; give at least one character")
    return ids


def _encodable(tokenizer: PreTrainedTokenizerBase, text: str) -> bool:
    try:
        return bool(tokenizer(text, add_special_tokens=False)["input_ids"])
    except Exception:
        return False


def _decode_new(tokenizer: PreTrainedTokenizerBase, ids: list[int]) -> str:
    """New tokens up to the first end-of-sequence token (generate() pads finished rows after it)."""
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id in ids:
        ids = ids[: ids.index(tokenizer.eos_token_id)]
    return tokenizer.decode(ids, skip_special_tokens=True)


def _pad_id(tokenizer: PreTrainedTokenizerBase) -> int:
    """Padding is masked out, so any id works; the char tokenizer has neither pad nor eos."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return candidate
    return 0


def _window(model: PreTrainedModel) -> int | None:
    """The longest context the model was built for (GPT-2's learned positions end there); None if unknown."""
    return getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
