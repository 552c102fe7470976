"""`sft`: next-token cross-entropy over the tokens that count (pretrain, full, lora, qlora)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from ftdist.training.loss import batch_mean_losses, count_label_tokens, token_loss_sum
from ftdist.training.objectives.base import Batch, Objective

# Logit values one evaluation forward may hold (4 MiB in fp32). Stacking a few small batches beats one at a time,
# and beats stacking all of them, whose activations leave the cache: the tiny SQL GPT's 2 x 200-batch evaluation
# took 2.9 s one batch at a time, 2.0-2.1 s at 4-16 batches (1 << 20 is about 9) and 2.7 s at 1 << 25 (idle 2-core
# AVX2 CPU, 2 threads).
EVAL_LOGITS_BUDGET = 1 << 20


class TokenObjective(Objective):
    row_kind = "tokens"

    def count(self, batch: Batch) -> int:
        return count_label_tokens(batch)

    def loss_sum(
        self, model: nn.Module, batch: Batch, split: str = "train"
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return token_loss_sum(model, batch, self.device, self.head), {}

    def evaluate(self, model: nn.Module, batches: Iterable[Batch], split: str) -> dict[str, torch.Tensor]:
        """The mean over batches of each batch's mean loss per token (the tiny SQL GPT paper's estimate)."""
        losses = batch_mean_losses(model, batches, self.device, EVAL_LOGITS_BUDGET, self.head)
        return {"loss": torch.stack(losses).mean()}
