"""Next-token cross-entropy on batches whose `labels` are already aligned with `input_ids` (-100 = ignore)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from ftdist.training.chunked_loss import ChunkedLossHead

IGNORE_INDEX = -100


def token_loss_sum(
    model: nn.Module, batch: dict[str, torch.Tensor], device: torch.device, head: ChunkedLossHead | None = None
) -> torch.Tensor:
    """Sum of per-token cross-entropy (nats) over the tokens that count. Divide by the token count yourself,
    so that gradient accumulation weights every token equally, however the tokens fall into micro-batches.
    With `head` (ftdist/training/chunked_loss.py) the full logits are never held: same value, less memory."""
    inputs = {key: value.to(device, non_blocking=True) for key, value in batch.items() if key != "labels"}
    labels = batch["labels"].to(device, non_blocking=True)  # (B, T)
    if head is not None:
        with head.computing(labels):
            return model(**inputs, use_cache=False).logits  # the loss sum, chunk by chunk
    logits = model(**inputs, use_cache=False).logits  # (B, T, V)
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")


def count_label_tokens(batch: dict[str, torch.Tensor]) -> int:
    return int((batch["labels"] != IGNORE_INDEX).sum())


def batch_mean_losses(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    device: torch.device,
    logits_budget: int,
    head: ChunkedLossHead | None = None,
) -> list[torch.Tensor]:
    """Each batch's mean loss per counted token, as `token_loss_sum / count_label_tokens` gives it, but from as
    few forward passes as `logits_budget` (logit values held at once) allows: batches of one shape are stacked
    along the batch axis. Evaluation of a small model is then a few large matrix products instead of hundreds
    of small ones, whose fixed per-call cost dominates on a CPU (the tiny SQL GPT's 2 x 200 batches). With `head`,
    whose logits are too large to hold whole, each batch goes alone through the chunked loss."""
    if head is not None:  # logits too large to hold whole: one batch at a time, chunk by chunk
        return [token_loss_sum(model, batch, device, head) / max(1, count_label_tokens(batch)) for batch in batches]
    losses: list[torch.Tensor] = []
    group: list[dict[str, torch.Tensor]] = []

    def flush() -> None:
        merged = {key: torch.cat([batch[key] for batch in group]) for key in group[0]}
        inputs = {key: value.to(device) for key, value in merged.items() if key != "labels"}
        labels = merged["labels"].to(device)  # (n * B, T)
        logits = model(**inputs, use_cache=False).logits  # (n * B, T, V)
        per_token = F.cross_entropy(
            logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="none"
        ).view(labels.shape)
        sizes = [batch["labels"].shape[0] for batch in group]
        for rows, batch in zip(per_token.split(sizes), group, strict=True):
            losses.append(rows.sum() / max(1, count_label_tokens(batch)))
        group.clear()

    for batch in batches:
        if group:
            first = group[0]
            same_shape = batch.keys() == first.keys() and all(batch[k].shape[1:] == first[k].shape[1:] for k in batch)
            vocab = getattr(getattr(model, "config", None), "vocab_size", 1 << 16)
            too_big = (sum(b["labels"].numel() for b in group) + batch["labels"].numel()) * vocab > logits_budget
            if not same_shape or too_big:
                flush()
        group.append(batch)
    if group:
        flush()
    return losses
