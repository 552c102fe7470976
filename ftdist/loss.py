"""Next-token cross-entropy on batches whose `labels` are already aligned with `input_ids` (-100 = ignore)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100


def token_loss_sum(model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
    """Sum of per-token cross-entropy (nats) over the tokens that count. Divide by the token count yourself,
    so that gradient accumulation weights every token equally, however the tokens fall into micro-batches."""
    inputs = {key: value.to(device, non_blocking=True) for key, value in batch.items() if key != "labels"}
    labels = batch["labels"].to(device, non_blocking=True)  # (B, T)
    logits = model(**inputs, use_cache=False).logits  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")


def count_label_tokens(batch: dict[str, torch.Tensor]) -> int:
    return int((batch["labels"] != IGNORE_INDEX).sum())
