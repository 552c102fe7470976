"""`strategy: fsdp`: FSDP2 (`fully_shard`), parameters, gradients and optimizer state sharded over ranks.

The order of wrapping is fixed and matters (torchtitan's order):
  1. activation checkpointing wraps each decoder layer (so the recompute sees unsharded, gathered weights);
  2. `fully_shard` each (wrapped) decoder layer: one all-gather / reduce-scatter unit per layer;
  3. `fully_shard` the root, which picks up what is left (embeddings, final norm, head).
Mixed precision is FSDP's own policy (compute in bf16/fp16, sharded fp32 master weights, fp32 reduction),
not autocast. Weights from files are read by rank 0 only (`materialize`): the other ranks shard a meta skeleton
and receive their shards from rank 0 after step 3 (ftdist/strategies/materialize.py). Checkpoints are sharded
DCP folders (`dcp/`): every rank writes its shards in parallel, and a checkpoint can be loaded on another world
size; `read_full_state` turns one into a full state dict offline.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import (
    CheckpointImpl,
    apply_activation_checkpointing,
    checkpoint_wrapper,
)
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, OffloadPolicy, fully_shard
from torch.distributed.tensor import DTensor

from ftdist.strategies.base import OptimizerFactory, Strategy
from ftdist.strategies.layers import decoder_layers
from ftdist.strategies.materialize import build_on_rank0, is_meta, place, rank0_reads, receive_from_rank0

if TYPE_CHECKING:  # see materialize.py
    from ftdist.models.recipe import ModelRecipe

DCP_FOLDER = "dcp"


class FullyShardedDataParallel(Strategy):
    """FSDP2 on every decoder layer and the root."""

    checkpoint_format = "dcp"
    layout = f"{DCP_FOLDER}/"
    needs_process_group = True  # a 1-process job gets a 1-rank group: FSDP2 then shards over one rank
    copies_loaded_weights = True  # into shards / partitions of its own
    any_world_size = True  # DCP reshards on load
    _save_group: dist.ProcessGroup | None = None  # async saves' own gloo group, made at the first one

    def materialize(self, recipe: ModelRecipe) -> nn.Module:
        """Rank 0 reads the weights; the other ranks build a skeleton on the meta device, which `prepare` shards
        and then fills from rank 0, one tensor at a time (so the job holds about one full copy, not one per rank).
        Rank 0 keeps references to its full state dict until then (`fully_shard` copies its own shard out)."""
        self._from_rank0 = rank0_reads(recipe, self.env)
        if not self._from_rank0:
            return recipe.build()
        model = build_on_rank0(recipe, self.env)
        self._rank0_state = model.state_dict() if self.env.is_main else {}
        return model

    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        model = self._shard(model)
        if getattr(self, "_from_rank0", False):  # the same on every rank: a collective follows
            model = place(model, self.device)  # a skeleton's shards get storage; rank 0's are already there
            receive_from_rank0(model, self.__dict__.pop("_rank0_state"))
        return model, build_optimizer(model)

    def _shard(self, model: nn.Module) -> nn.Module:
        cfg = self.config.strategy
        if not is_meta(model):  # a skeleton is sharded on the meta device, then given storage (`place`)
            model = model.to(self.device)
        layers = decoder_layers(model)
        if cfg.activation_checkpointing:  # 1. before sharding: the wrapper must sit outside the FSDP unit
            wrapped: dict[int, nn.Module] = {}

            def wrap(module: nn.Module) -> nn.Module:
                wrapped[id(module)] = checkpoint_wrapper(module, checkpoint_impl=CheckpointImpl.NO_REENTRANT)
                return wrapped[id(module)]

            targets = {id(layer) for layer in layers}
            apply_activation_checkpointing(model, checkpoint_wrapper_fn=wrap, check_fn=lambda m: id(m) in targets)
            layers = [wrapped[id(layer)] for layer in layers]
        shard = partial(
            fully_shard,
            mp_policy=self._mixed_precision(),
            offload_policy=CPUOffloadPolicy(pin_memory=self.device.type == "cuda")
            if cfg.offload_param == "cpu"
            else OffloadPolicy(),
            reshard_after_forward=cfg.reshard_after_forward,
        )
        for layer in layers:  # 2. one unit per decoder layer
            shard(layer)
        shard(model)  # 3. the root: embeddings, final norm, head
        return model

    def _mixed_precision(self) -> MixedPrecisionPolicy:
        dtype = self.precision.autocast_dtype
        if dtype is None:
            return MixedPrecisionPolicy()
        return MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)

    def autocast(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # the mixed-precision policy casts parameters; no autocast on top

    def unwrap(self, model: nn.Module) -> nn.Module:
        return model  # FSDP2 shards in place: the module keeps its class (and `config`, `save_pretrained`)

    def accumulating(self, model: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager:
        # Reduce-scatter only after the last micro-batch; until then each rank accumulates unsharded grads.
        model.set_requires_gradient_sync(last_micro_step)
        return contextlib.nullcontext()

    def clip_gradients(self, model: nn.Module, max_norm: float) -> float:
        if max_norm <= 0:
            return math.nan
        params = [p for p in model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)  # a DTensor: the global norm over all shards
        return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)

    def _sharded_state(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> dict:
        model_state = self.state_filter.select(get_model_state_dict(model), model)
        return {"model": model_state, "optim": get_optimizer_state_dict(model, optimizer)}

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        dcp.save(self._sharded_state(model, optimizer), checkpoint_id=str(directory / DCP_FOLDER))

    def snapshot(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path
    ) -> Callable[[], Callable[[], None]]:
        """DCP's async_save: each rank's shards copied to host memory by the stager's thread, then written by
        DCP's thread, which coordinates the ranks over a gloo group of its own (never the training's group,
        which is in use)."""
        if self._save_group is None:
            self._save_group = dist.new_group(backend="gloo")  # collective: every rank's first async save
        response = dcp.async_save(
            self._sharded_state(model, optimizer),
            checkpoint_id=str(directory / DCP_FOLDER),
            process_group=self._save_group,
            async_stager=self.host_stager(),  # async staging: an AsyncSaveResponse with two futures
        )

        def copied() -> Callable[[], None]:
            response.staging_completion.result()
            return response.upload_completion.result

        return copied

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        state = self._sharded_state(model, optimizer)
        dcp.load(state, checkpoint_id=str(directory / DCP_FOLDER))  # fills `state` in place, shard by shard
        strict = not self.state_filter.trainable_only  # a frozen base is rebuilt from its source, not loaded
        set_model_state_dict(model, state["model"], options=StateDictOptions(strict=strict))
        set_optimizer_state_dict(model, optimizer, state["optim"])

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        # FSDP2 gathers to rank 0 on CPU. (FSDP1's equivalent with cpu_offload=True segfaults on CPU, torch 2.13.)
        state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
        return state if self.env.is_main else None

    @classmethod
    def owns(cls, folder: Path) -> bool:
        return (Path(folder) / DCP_FOLDER / ".metadata").is_file()

    @classmethod
    def read_full_state(cls, folder: Path, prefix: str = "model.") -> dict[str, torch.Tensor]:
        # Read only the "model.*" entries (the optimizer state in the same folder is twice as big and not
        # needed). dcp_to_torch_save would convert everything; a planned load of selected keys reads just these.
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata

        reader = dcp.FileSystemReader(str(Path(folder) / DCP_FOLDER))
        metadata = reader.read_metadata().state_dict_metadata
        state = {
            key: torch.empty(entry.size, dtype=entry.properties.dtype)
            for key, entry in metadata.items()
            if key.startswith(prefix) and isinstance(entry, TensorStorageMetadata)
        }
        dcp.load(state, storage_reader=reader, no_dist=True)  # fills `state` in place
        return {key.removeprefix(prefix): tensor for key, tensor in state.items()}
