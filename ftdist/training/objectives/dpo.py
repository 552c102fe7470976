"""`dpo`: Direct Preference Optimization (Rafailov et al., 2023) on prompt/chosen/rejected pairs, or IPO.

Per pair, with log-ratios against the reference r_c = log pi(chosen) - log ref(chosen) (and r_r likewise,
each summed over the response's tokens): sigmoid loss -log sigmoid(beta (r_c - r_r)), IPO loss
(r_c / n_c - r_r / n_r - 1 / (2 beta))^2 with n the response's tokens. These are TRL 1.x's `DPOTrainer`
definitions (`loss_type` sigmoid and ipo), and the logged metrics are its: rewards beta * r of chosen and
rejected, their margin, and the share of pairs whose chosen reward is the higher (accuracy).
tests/unit/training/test_trl_parity.py holds the two to 1e-5. `label_smoothing` eps > 0 gives conservative DPO,
(1 - eps) times the sigmoid loss plus eps times the flipped one (TRL's `sigmoid` before 1.0; 1.x has none).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ftdist.training.loss import IGNORE_INDEX
from ftdist.training.objectives.base import Batch, ReferencedObjective
from ftdist.training.objectives.sequence_logps import joined, response_logps


class DpoObjective(ReferencedObjective):
    row_kind = "pairs"

    def logps(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen, rejected) response log-probabilities, each (B,), from one forward over both."""
        ids, labels = joined(batch, "chosen_", "rejected_", self.device)
        return response_logps(model, ids, labels, self.head)[0].chunk(2)

    def loss_sum(
        self, model: nn.Module, batch: Batch, split: str = "train"
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # The reference first: its forward (no gradient) then runs while no graph of the policy's is held.
        ref_chosen, ref_rejected = self.reference.scores(model, batch, split)
        chosen, rejected = self.logps(model, batch)
        chosen_ratio, rejected_ratio = chosen - ref_chosen, rejected - ref_rejected
        beta = self.settings.beta
        if self.settings.loss == "ipo":
            chosen_tokens = (batch["chosen_labels"] != IGNORE_INDEX).sum(-1).clamp(min=1).to(chosen.device)
            rejected_tokens = (batch["rejected_labels"] != IGNORE_INDEX).sum(-1).clamp(min=1).to(chosen.device)
            delta = chosen_ratio / chosen_tokens - rejected_ratio / rejected_tokens
            losses = (delta - 1 / (2 * beta)) ** 2
        else:
            delta, smoothing = chosen_ratio - rejected_ratio, self.settings.label_smoothing
            losses = -F.logsigmoid(beta * delta) * (1 - smoothing) - F.logsigmoid(-beta * delta) * smoothing
        return losses.sum(), preference_metrics(beta * chosen_ratio.detach(), beta * rejected_ratio.detach())


def preference_metrics(chosen: torch.Tensor, rejected: torch.Tensor) -> dict[str, torch.Tensor]:
    """Sums over the pairs of a batch: each side's reward, the margin, and pairs whose chosen side wins."""
    return {
        "rewards_chosen": chosen.sum(),
        "rewards_rejected": rejected.sum(),
        "margin": (chosen - rejected).sum(),
        "accuracy": (chosen > rejected).float().sum(),
    }
