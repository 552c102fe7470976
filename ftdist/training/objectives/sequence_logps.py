"""Log-probabilities of whole responses, and the forward pass that scores chosen and rejected together."""

from __future__ import annotations

import torch
from torch import nn

from ftdist.training.chunked_loss import ChunkedLossHead
from ftdist.training.loss import IGNORE_INDEX
from ftdist.training.objectives.base import Batch


def sequences(batch: Batch, prefix: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) of the batch's `prefix` sequences (`chosen_`, `rejected_`, `kl_` or ""), on `device`."""
    ids, labels = batch[f"{prefix}input_ids"], batch[f"{prefix}labels"]
    return ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def joined(batch: Batch, first: str, second: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, labels) of the `first` sequences, then the `second` ones, as one (2B, T) batch: one forward
    for both, as TRL's concatenated forward does (the rows are trimmed to one length by the batch source)."""
    ids = torch.cat([batch[f"{first}input_ids"], batch[f"{second}input_ids"]])
    labels = torch.cat([batch[f"{first}labels"], batch[f"{second}labels"]])
    return ids.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def response_logps(
    model: nn.Module, ids: torch.Tensor, labels: torch.Tensor, head: ChunkedLossHead | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log p(label) over each row's counted tokens, counted tokens per row), both (N,) fp32.

    No attention mask and no position ids: every row is right-padded, so under causal attention no real token
    sees padding and positions count from 0 as they would alone; the kernels take their fast causal path.
    With `head` (the chunked loss, ftdist/training/chunked_loss.py) the (N, T, V) logits are never held whole."""
    counted = labels != IGNORE_INDEX
    if head is not None:
        with head.computing(labels, per_token=True):
            per_token = model(input_ids=ids, use_cache=False).logits  # (N, T), 0 where not counted
        return per_token.sum(-1), counted.sum(-1).float()
    logits = model(input_ids=ids, use_cache=False).logits.float()  # (N, T, V)
    targets = labels.masked_fill(~counted, 0)
    # log_softmax gathered at the target, without keeping a (N, T, V) log-softmax for backward
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    return (picked * counted).sum(-1), counted.sum(-1).float()
