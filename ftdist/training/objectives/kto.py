"""`kto`: Kahneman-Tversky Optimization (Ethayarajh et al., 2024) on responses labelled desirable or not.

Per row, with r = log pi(response) - log ref(response) summed over the response's tokens, and z the
micro-batch's KL estimate mean(log pi(y') - log ref(y')) over mismatched sequences y' (the row's prompt with
another row's response, built when the data is prepared), averaged over the ranks, detached and clamped at 0:
desirable rows lose desirable_weight * (1 - sigmoid(beta (r - z))), undesirable ones undesirable_weight *
(1 - sigmoid(beta (z - r))). These are TRL's `KTOTrainer` definitions (its default `kto` loss).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from ftdist.training.objectives.base import Batch, ReferencedObjective
from ftdist.training.objectives.sequence_logps import response_logps, sequences


class KtoObjective(ReferencedObjective):
    row_kind = "unpaired"

    def logps(self, model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(response, KL sequence) log-probabilities, each (B,). The KL sequences take no gradient (TRL's), and
        go first, so their forward runs while no graph is held."""
        with torch.no_grad():
            mismatched = response_logps(model, *sequences(batch, "kl_", self.device), self.head)[0]
        response = response_logps(model, *sequences(batch, "", self.device), self.head)[0]
        return response, mismatched

    def loss_sum(
        self, model: nn.Module, batch: Batch, split: str = "train"
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        ref_response, ref_mismatched = self.reference.scores(model, batch, split)  # first: see DpoObjective
        response, mismatched = self.logps(model, batch)
        kl = (mismatched - ref_mismatched).mean().detach()
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(kl, op=dist.ReduceOp.SUM)  # the ranks run the same micro-steps: one collective each
            kl = kl / dist.get_world_size()
        kl = kl.clamp(min=0)
        ratio = response - ref_response
        desirable = batch["desirable"].to(ratio.device).bool()
        beta, s = self.settings.beta, self.settings
        losses = torch.where(
            desirable,
            s.desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl))),
            s.undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio))),
        )
        rewards = beta * ratio.detach()
        metrics = {
            "rewards_desirable": (rewards * desirable).sum(),
            "rewards_undesirable": (rewards * ~desirable).sum(),
            "kl": kl * len(ratio),
        }
        return losses.sum(), metrics
