"""How the model arrives on each rank: one rank reads the weights, the others build an empty skeleton and receive.

The strategies' `materialize` steps share these pieces:
  * `rank0_reads(recipe, env)`: whether this job loads on rank 0 only (a multi-rank job whose weights come from
    files; a fresh seeded model is built by every rank, as before, so 1 and 2 ranks start equal);
  * `place(model, device)`: move a real model, or give a skeleton (meta) storage on `device`;
  * `receive_from_rank0(model, state)`: after FSDP2 sharded the model, every rank's shards from rank 0's full
    state dict (torch's `set_model_state_dict(..., broadcast_from_rank0=True)`), then the buffers;
  * `broadcast_buffers(model)`: rank 0's buffers on every rank (ZeRO-1/2, whose engine sends only parameters).
Traps of an empty build, each handled here: `to_empty` on plain tensors replaces each Parameter, which unties
tied embeddings (SmolLM2's lm_head and embed_tokens), so it runs with torch's swap-on-conversion, which keeps
the Parameter objects; non-persistent buffers (rotary `inv_freq`) are in no state dict, so they are broadcast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

from ftdist.distributed.env import DistEnv

if TYPE_CHECKING:  # ftdist.models imports transformers' modeling code: launchers load strategies without it
    from ftdist.models.recipe import ModelRecipe


def is_meta(model: nn.Module) -> bool:
    """Whether `model` is a skeleton (any parameter without storage)."""
    return any(p.is_meta for p in model.parameters())


def rank0_reads(recipe: ModelRecipe, env: DistEnv) -> bool:
    """Whether only rank 0 reads the weights (the others build `recipe.skeleton()`). Same answer on every rank."""
    return env.distributed and env.world_size > 1 and recipe.reads_weights


def build_on_rank0(recipe: ModelRecipe, env: DistEnv) -> nn.Module:
    """Rank 0's real model, or this rank's skeleton. Every rank leaves with rank 0's CPU random state: when each
    rank built its own model they all drew the same numbers (adapter init), so later draws (LoRA dropout) were the
    same stream on every rank; a skeleton draws nothing, so without this rank 1's dropout masks would change."""
    model = recipe.build() if env.is_main else recipe.skeleton()
    state = [torch.get_rng_state() if env.is_main else None]
    dist.broadcast_object_list(state, src=0)
    torch.set_rng_state(state[0])
    return model


def place(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` on `device`: moved, or, for a skeleton, given uninitialised storage there (filled by a broadcast).

    Why swap-on-conversion: `to_empty` from meta replaces each Parameter with a new one, module by module, so a
    parameter shared by two modules (tied embeddings) would become two; swapping keeps the one object."""
    if not is_meta(model):
        return model.to(device)
    previous = torch.__future__.get_swap_module_params_on_conversion()
    torch.__future__.set_swap_module_params_on_conversion(True)
    try:
        return model.to_empty(device=device)
    finally:
        torch.__future__.set_swap_module_params_on_conversion(previous)


def receive_from_rank0(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Fill every rank's (sharded) model from rank 0's full `state` ({} on the other ranks), tensor by tensor,
    so no rank but 0 ever holds more than one whole tensor. Collective."""
    options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
    set_model_state_dict(model, state, options=options)
    broadcast_buffers(model)  # non-persistent buffers (rotary inv_freq) are in no state dict


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers on every rank (a skeleton's are uninitialised). Collective."""
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
