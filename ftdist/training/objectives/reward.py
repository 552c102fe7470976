"""`reward`: a reward model (a sequence-classification head with one output) trained on pairs with the
Bradley-Terry loss -log sigmoid(r_chosen - r_rejected), plus `center_rewards_coefficient * (r_c + r_r)^2`
when set: TRL's `RewardTrainer` definitions (tests/unit/training/test_trl_parity.py holds the two to 1e-5).

A score is the model's one output at the sequence's last token, pooled by transformers itself (its last token
that is not the pad token), so the trained model scores text in plain transformers exactly as it trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftdist.training.loss import IGNORE_INDEX
from ftdist.training.objectives.base import Batch, RowObjective
from ftdist.training.objectives.dpo import preference_metrics
from ftdist.training.objectives.sequence_logps import joined


class RewardObjective(RowObjective):
    row_kind = "pairs"

    def __init__(self, config, strategy, device, head=None) -> None:
        super().__init__(config, strategy, device, head)
        self.settings = config.method.reward
        self.pad_id: int | None = None  # the model's, read at the first forward

    def scores(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) rewards, each (B,) fp32, from one forward over both."""
        ids, labels = joined(batch, "chosen_", "rejected_", self.device)
        if self.pad_id is None:
            self.pad_id = self.strategy.unwrap(model).config.pad_token_id
        rewards = model(input_ids=whole_sequences(ids, labels, self.pad_id), use_cache=False).logits
        return rewards[:, 0].float().chunk(2)

    def loss_sum(
        self, model: nn.Module, batch: Batch, split: str = "train"
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        chosen, rejected = self.scores(model, batch)
        losses = -F.logsigmoid(chosen - rejected)
        if self.settings.center_rewards_coefficient:
            losses = losses + self.settings.center_rewards_coefficient * (chosen + rejected) ** 2
        return losses.sum(), preference_metrics(chosen.detach(), rejected.detach())


def whole_sequences(ids: torch.Tensor, labels: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The full token sequences of shifted rows: a row's inputs stop one token short of its end (the last
    token is only a target), so the last counted target is put back after the last input; padding follows."""
    full = torch.cat([ids, ids.new_full((len(ids), 1), pad_id)], dim=1)  # (N, T + 1)
    positions = torch.arange(labels.shape[1], device=labels.device)
    last = ((labels != IGNORE_INDEX) * positions).argmax(-1)  # (N,) the last counted target's position
    full[torch.arange(len(ids), device=ids.device), last + 1] = labels.gather(1, last.unsqueeze(1)).squeeze(1)
    after = torch.arange(full.shape[1], device=ids.device).unsqueeze(0) > (last + 1).unsqueeze(1)
    return full.masked_fill(after, pad_id)  # transformers pools at the last token that is not padding
