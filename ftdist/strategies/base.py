"""The one interface every distribution strategy implements.

The trainer calls these methods and never asks which strategy it has. A strategy decides how the model is
wrapped, how a loss turns into a step, and how state is written and read: each strategy owns its checkpoint
format (`save`, `load`, and, offline, `owns` and `read_full_state`), so nothing outside its file names that
format. The method hands every strategy the same `StateFilter` (what a checkpoint holds). A new strategy is a
new file and one line in ftdist/strategies/__init__.py.
"""

from __future__ import annotations

import contextlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from ftdist.distributed.device import Precision
from ftdist.distributed.env import DistEnv
from ftdist.methods.base import StateFilter

if TYPE_CHECKING:
    from ftdist.models.recipe import ModelRecipe

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]
FORMAT_RECORD = "strategy.json"  # in every checkpoint: which format, written on how many ranks, what it holds


class Strategy(ABC):
    """Wrap, step, save, load and unwrap one model across this job's processes."""

    checkpoint_format: ClassVar[str]
    """The name of what `save` writes (strategies that share a format share the name)."""
    layout: ClassVar[str]
    """What a checkpoint folder of this format holds, for messages (e.g. `dcp/`)."""
    needs_process_group: ClassVar[bool] = False
    """Whether the strategy needs torch.distributed even in a 1-process job (FSDP, DeepSpeed)."""
    any_world_size: ClassVar[bool] = True
    """Whether a checkpoint resumes on another number of ranks than wrote it."""
    copies_loaded_weights: ClassVar[bool] = False
    """Whether `prepare` copies the loaded weights into storage of its own (shards, partitions), so that the
    pages of the weight files the load mapped are no longer the model's once it has run. Elsewhere they are
    the model's storage on a CPU (a same-dtype load is the mapped file itself); any device but the CPU is a copy."""

    def __init__(
        self,
        config,
        env: DistEnv,
        device: torch.device,
        precision: Precision,
        state_filter: StateFilter = StateFilter(),
    ) -> None:
        self.config, self.env, self.device, self.precision = config, env, device, precision
        self.state_filter = state_filter
        self.scaler = torch.amp.GradScaler(device.type) if precision.grad_scaler else None

    # --- before anything starts ----------------------------------------------------------------------------
    @classmethod
    def preflight(cls, config, world) -> list[str]:
        """Problems of running this strategy in `world` (ftdist.preflight.World), one sentence each with the fix."""
        return []

    # --- setup ---------------------------------------------------------------------------------------------
    def materialize(self, recipe: ModelRecipe) -> nn.Module:
        """The model as it arrives on this rank, before `prepare`: here every rank builds it (reads the weights)
        itself. Strategies that can do with fewer reads override this: one rank reads, the others build an empty
        skeleton, and `prepare` fills it (ftdist/strategies/materialize.py)."""
        return recipe.build()

    @abstractmethod
    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        """Move and wrap the model for this strategy, and build its optimizer. Returns (model, optimizer)."""

    @abstractmethod
    def unwrap(self, model: nn.Module) -> nn.Module:
        """The underlying transformers / peft model, for saving config, generation and export."""

    # --- one optimizer step ----------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for the forward pass."""
        dtype = self.precision.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def accumulating(self, model: nn.Module, last_micro_step: bool) -> contextlib.AbstractContextManager:
        """Context for one micro-step's forward/backward; DDP skips the gradient all-reduce until the last."""
        return contextlib.nullcontext()

    def backward(self, loss: torch.Tensor, model: nn.Module) -> None:
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        """Clip (if train.grad_clip > 0), step, and zero the gradients. Returns the gradient norm (nan if unknown)."""
        if self.scaler:
            self.scaler.unscale_(optimizer)
        norm = self.clip_gradients(model, self.config.train.grad_clip)
        if self.scaler:
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return norm

    def clip_gradients(self, model: nn.Module, max_norm: float) -> float:
        if max_norm <= 0:
            return math.nan
        params = [p for p in model.parameters() if p.grad is not None]
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    # --- state -----------------------------------------------------------------------------------------------
    @abstractmethod
    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        """Write model and optimizer state into `directory` (the model's tensors that `state_filter` keeps).
        Called on every rank; the folder already exists."""

    @abstractmethod
    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        """Restore what `save` wrote. Called on every rank after `prepare`."""

    def host_stager(self) -> Any:
        """The one DCP `DefaultStager` of this strategy's asynchronous saves. It copies on its own thread
        (`use_async_staging`): the copy runs while the next step's forward and backward do, and the loop's next
        optimizer update waits for it (`Checkpointer.before_update`), as torchtitan's `maybe_wait_for_staging`
        does. It keeps its host copies from one save to the next (at most one is in flight, so they are free
        again): fresh host memory for every save cost page faults, 5.7 s against 2.3 s to copy SmolLM2's 540 MB
        of weights on a busy 2-core machine. On a GPU the copies are pinned and non-blocking, on DCP's own
        side stream, so they also overlap the device's compute."""
        if getattr(self, "_host_stager", None) is None:
            from torch.distributed.checkpoint.staging import DefaultStager, StagingOptions

            cuda = self.device.type == "cuda"
            options = StagingOptions(
                use_pinned_memory=cuda, use_shared_memory=False, use_async_staging=True, use_non_blocking_copy=cuda
            )
            self._host_stager = DefaultStager(options)  # created on the main thread (its CUDA stream must be)
        if self.device.type == "cuda":
            torch.cuda.current_stream().synchronize()  # the side stream must not read before the update is done
        return self._host_stager

    @property
    def can_snapshot(self) -> bool:
        """Whether this strategy saves asynchronously (it overrides `snapshot`)."""
        return type(self).snapshot is not Strategy.snapshot

    def snapshot(
        self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path
    ) -> Callable[[], Callable[[], None]] | None:
        """For an asynchronous save, called on every rank at the step boundary: start copying to host memory
        what `save` would write into `directory`, and return `copied`, which waits for that copy and returns the
        function that writes it. Both run later on a background thread, with no collective on the training's
        process group. The copy may run on while the next step's forward and backward do (they leave weights
        and optimizer state as they are); the loop's next optimizer update waits until `copied` has returned.
        None: this strategy saves synchronously only."""
        return None

    def format_record(self) -> dict[str, Any]:
        """What `strategy.json` says about a checkpoint this run writes (rank 0 writes it)."""
        return {
            "format": self.checkpoint_format,
            "strategy": self.config.strategy.name,
            "world_size": self.env.world_size,
            "trainable_only": self.state_filter.trainable_only,
        }

    # --- the format, offline: no process group, no model ---------------------------------------------------
    @classmethod
    @abstractmethod
    def owns(cls, folder: Path) -> bool:
        """Whether `folder` is a checkpoint in this strategy's format."""

    @classmethod
    @abstractmethod
    def read_full_state(cls, folder: Path) -> dict[str, torch.Tensor]:
        """The checkpoint's model tensors as one state dict on CPU, in the model's own parameter names (the
        whole model, or only the trainable ones for adapter methods: see `read_record`)."""

    @classmethod
    def read_record(cls, folder: Path) -> dict[str, Any]:
        """`strategy.json` of a checkpoint; {} for checkpoints written before it existed."""
        path = Path(folder) / FORMAT_RECORD
        return json.loads(path.read_text()) if path.is_file() else {}

    @abstractmethod
    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The consolidated model weights on rank 0 (None on the others). Collective: call on every rank."""

    def state_dict(self) -> dict | None:
        """The strategy's own resumable state beside the model's: its fp16 loss scaler (None without one)."""
        return self.scaler.state_dict() if self.scaler else None

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler and state:
            self.scaler.load_state_dict(state)
