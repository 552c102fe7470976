"""The LM loss without the full logits: the output layer and the cross-entropy, a chunk of tokens at a time.

`token_loss_sum`'s plain path holds the (B, T, V) logits, then an fp32 copy of them, then their gradient: for
Llama-3's 128k vocabulary at 2 x 4096 tokens that is 4 GiB per copy. Here each chunk of tokens goes through the
output layer and the cross-entropy inside `torch.utils.checkpoint`, so only one chunk's logits exist at a time,
in forward and again (recomputed) in backward. torchtune's chunked output loss, TRL's chunked NLL and Liger's
fused linear cross-entropy do the same; the cost is the output layer's forward computed twice.

Why it is installed on the output layer itself rather than called from outside: the model must still run its
own forward, because the strategies hook it (FSDP2 gathers the root's parameters in the root's forward; ZeRO-3
gathers each module's in that module's pre-forward hook and again before its backward). So the output layer
of this model instance gets a `forward` that, while `computing(labels)` is active, returns the loss sum over
the chunks instead of logits; at any other time (evaluation, generation) it is the layer's own forward.
Nothing of the library's classes changes. The preference objectives need each token's log-probability, not one
sum (a response's log-probability is its tokens' sum): `computing(labels, per_token=True)` returns those, (B, T).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ftdist.training.loss import IGNORE_INDEX


class ChunkedLossHead:
    """Installed on a plain `nn.Linear` output layer; see the module docstring."""

    def __init__(self, head: nn.Linear, chunk_tokens: int) -> None:
        self.head, self.chunk_tokens = head, chunk_tokens
        self.labels: torch.Tensor | None = None
        self.per_token = False
        self._own_forward = head.forward
        head.forward = self._forward  # this instance only

    @contextlib.contextmanager
    def computing(self, labels: torch.Tensor, per_token: bool = False) -> Iterator[None]:
        """Within this block the model's `logits` output is the 0-d loss sum over the tokens of `labels`, or
        with `per_token` the (B, T) fp32 log-probability of each label (0 where it is IGNORE_INDEX)."""
        self.labels, self.per_token = labels, per_token
        try:
            yield
        finally:
            self.labels, self.per_token = None, False

    def _forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.labels is None:
            return self._own_forward(hidden)
        hidden = hidden.flatten(0, 1)  # (B * T, H)
        labels = self.labels.flatten()  # (B * T,)
        parts = [
            checkpoint(
                _chunk_token_losses,
                hidden[start : start + self.chunk_tokens],
                self.head.weight,
                self.head.bias,
                labels[start : start + self.chunk_tokens],
                use_reentrant=False,
            )
            for start in range(0, labels.numel(), self.chunk_tokens)
        ]  # (chunk,) fp32 each: a few bytes per token, beside a chunk's (chunk, V) logits
        if self.per_token:
            return -torch.cat(parts).view(self.labels.shape)
        return torch.stack([part.sum() for part in parts]).sum()


def _chunk_token_losses(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, labels: torch.Tensor
) -> torch.Tensor:
    """Each token's cross-entropy (0 where ignored), (chunk,) fp32."""
    logits = F.linear(hidden, weight, bias)  # (chunk, V), in the autocast dtype where autocast is on
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX, reduction="none")


def install_chunked_loss(model: nn.Module, chunk_tokens: int | None) -> ChunkedLossHead | None:
    """The chunked head on `model`'s output layer, or None (the plain loss) when chunking is off or the output
    layer is not a plain linear layer (a LoRA- or bitsandbytes-wrapped head keeps the plain loss)."""
    if chunk_tokens is None:
        return None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    plain = isinstance(head, nn.Linear) and not hasattr(head, "base_layer")
    if not plain or any("bitsandbytes" in cls.__module__ for cls in type(head).__mro__):
        return None
    return ChunkedLossHead(head, chunk_tokens)
