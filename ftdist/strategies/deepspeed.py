"""`strategy: deepspeed`: ZeRO stage 1/2/3, optional CPU/NVMe offload, DeepSpeed's own bf16/fp16.

The engine owns backward and step; ftdist still owns the loop. Three details keep it equal to the other
strategies (checked against `single` in tests/distributed/test_strategies_distributed.py):
  * The trainer already divides every micro-batch loss by the token count of the whole accumulation window,
    so `backward(scale_wrt_gas=False)`: DeepSpeed must not divide by the accumulation steps a second time.
  * `managed_gradient_accumulation: false`: the trainer calls `step()` once per optimizer step, so that call
    is the accumulation boundary (DeepSpeed would otherwise count micro-steps itself).
  * `gradient_clipping` is always written (DeepSpeed's default clips at 1.0; ftdist's `train.grad_clip: 0` is off).
The optimizer comes from `optim:` (a torch optimizer); with offload on a GPU, DeepSpeedCPUAdam instead, the
fast CPU Adam DeepSpeed offload is built for. The learning-rate schedule stays ftdist's LambdaLR, which
drives the base optimizer's param groups that DeepSpeed steps.
Checkpoints are DeepSpeed's own sharded format in `<checkpoint>/deepspeed/`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from ftdist.errors import FtdistError
from ftdist.strategies import deepspeed_config
from ftdist.strategies.base import OptimizerFactory, Strategy
from ftdist.strategies.layers import enable_hf_activation_checkpointing
from ftdist.strategies.materialize import broadcast_buffers, build_on_rank0, place, rank0_reads

if TYPE_CHECKING:  # see materialize.py
    from ftdist.models.recipe import ModelRecipe

CHECKPOINT_TAG = "deepspeed"  # the sub-folder engine.save_checkpoint writes into


class DeepSpeedZero(Strategy):
    """A DeepSpeedEngine around the model; the optimizer returned is the engine's base torch optimizer."""

    checkpoint_format = "deepspeed"
    layout = f"{CHECKPOINT_TAG}/"
    needs_process_group = True
    any_world_size = False  # ZeRO partitions are per rank; resharding needs DeepSpeed's universal checkpoints

    @property
    def copies_loaded_weights(self) -> bool:  # type: ignore[override]
        """ZeRO-3 partitions every parameter; ZeRO-1/2 flatten only what trains, and frozen weights stay in the
        module (on a CPU, the loaded ones themselves)."""
        return self.config.strategy.zero_stage == 3

    @classmethod
    def preflight(cls, config, world) -> list[str]:
        """DeepSpeed installed, and a user JSON that agrees with the run config for this world size."""
        if importlib.util.find_spec("deepspeed") is None:
            return ["strategy: deepspeed needs the deepspeed package; pip install deepspeed, or use strategy: fsdp."]
        path = config.strategy.deepspeed_config
        if not path:
            return []
        resolved = config.precision if config.precision != "auto" else None
        generated = deepspeed_config.generate_for_run(config, world.size, resolved or "fp32")
        if resolved is None:  # `auto` resolves on the device; check only what is known before launch
            generated.pop("bf16"), generated.pop("fp16")
        try:
            deepspeed_config.merge(deepspeed_config.read_user_config(path), generated, path)
        except ValueError as error:
            return [f"{error}."]
        return []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.scaler = None  # DeepSpeed scales fp16 losses itself
        self.ds_config = self._build_config()

    def _build_config(self) -> dict:
        generated = deepspeed_config.generate_for_run(
            self.config, self.env.world_size, self.precision.name, pin_memory=self.device.type == "cuda"
        )
        generated["managed_gradient_accumulation"] = False  # see the module docstring
        path = self.config.strategy.deepspeed_config
        if not path:
            return generated
        try:
            return deepspeed_config.merge(deepspeed_config.read_user_config(path), generated, path)
        except ValueError as error:
            raise FtdistError(str(error)) from None

    def materialize(self, recipe: ModelRecipe) -> nn.Module:
        """Under ZeRO-3, `from_pretrained` builds the model inside `deepspeed.zero.Init` (transformers does so while
        a `HfDeepSpeedConfig` of this run's config is alive): each rank materialises only its partition, and only
        rank 0 reads the weights from the files (transformers hands the others meta tensors), then scatters them.
        ZeRO-1/2 keep a whole 16-bit model on every rank, but only rank 0 reads it: the others build an empty
        skeleton, which `prepare` gives storage and `deepspeed.initialize` fills (its engine broadcasts rank 0's
        parameters, `_broadcast_model`); `prepare` broadcasts the buffers, which the engine does not send."""
        if self.config.strategy.zero_stage == 3 and recipe.reads_weights:
            if self.device.type == "cpu":
                _no_shared_memory_op_build()  # zero.Init starts DeepSpeed's comm backend
            with _zero3_loading(self.ds_config):
                return recipe.build()
        return build_on_rank0(recipe, self.env) if rank0_reads(recipe, self.env) else recipe.build()

    def prepare(self, model: nn.Module, build_optimizer: OptimizerFactory) -> tuple[nn.Module, torch.optim.Optimizer]:
        import deepspeed

        if self.config.strategy.activation_checkpointing:
            enable_hf_activation_checkpointing(model)
        if not any(hasattr(p, "ds_id") for p in model.parameters()):  # zero.Init placed its partitions already
            model = place(model, self.device)  # a ZeRO-1/2 skeleton gets storage here
            if self.env.distributed:
                broadcast_buffers(model)  # a skeleton's are empty; rank 0's parameters come with the engine
        optimizer = self._optimizer(model, build_optimizer)
        if self.device.type == "cpu":
            _no_shared_memory_op_build()
        engine, ds_optimizer, _, _ = deepspeed.initialize(
            model=model, optimizer=optimizer, config=self.ds_config, dist_init_required=False
        )
        # LambdaLR needs a torch Optimizer; ZeRO's wrapper steps this base optimizer's param groups.
        base = getattr(ds_optimizer, "optimizer", ds_optimizer)
        return engine, base

    def _optimizer(self, model: nn.Module, build_optimizer: OptimizerFactory) -> torch.optim.Optimizer:
        offloading = self.config.strategy.offload_optimizer != "none" or self.config.strategy.offload_param != "none"
        if not (offloading and self.device.type == "cuda" and self.config.optim.name == "adamw"):
            return build_optimizer(model)
        # Offload on a GPU machine: the optimizer step runs on CPU, where DeepSpeedCPUAdam (SIMD, C++) is
        # several times faster than torch's AdamW. It JIT-builds once (~80 s) into ~/.cache/torch_extensions.
        from deepspeed.ops.adam import DeepSpeedCPUAdam

        from ftdist.training.optim import parameter_groups

        optim = self.config.optim
        groups = parameter_groups(model, optim.weight_decay)
        return DeepSpeedCPUAdam(groups, lr=optim.lr, betas=optim.betas, eps=optim.eps, adamw_mode=True)

    def unwrap(self, model: nn.Module) -> nn.Module:
        return getattr(model, "module", model)

    def autocast(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()  # with bf16/fp16 on, DeepSpeed holds the model in that dtype

    def backward(self, loss: torch.Tensor, model: nn.Module) -> None:
        model.backward(loss, scale_wrt_gas=False)  # the trainer already normalised over the accumulation window

    def step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> float:
        model.step()  # clips (gradient_clipping), steps, zeroes the gradients
        norm = model.get_global_grad_norm()
        return math.nan if norm is None else float(norm)

    def save(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        # DeepSpeed's own switch is the state filter: trainable-only leaves the frozen base out.
        frozen_out = self.state_filter.trainable_only
        model.save_checkpoint(
            str(directory), tag=CHECKPOINT_TAG, save_latest=False, exclude_frozen_parameters=frozen_out
        )

    def load(self, model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
        path, _ = model.load_checkpoint(
            str(directory),
            tag=CHECKPOINT_TAG,
            load_optimizer_states=True,
            load_lr_scheduler_states=False,
            load_module_strict=not self.state_filter.trainable_only,
        )
        if path is None:
            raise FtdistError(
                f"{directory} holds no DeepSpeed checkpoint ({CHECKPOINT_TAG}/); was it saved by another strategy?"
            )

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """fp32 master weights gathered from every rank's ZeRO partition (a collective on every rank)."""
        from deepspeed.utils import safe_get_full_fp32_param

        module = self.unwrap(model)
        parameters = dict(module.named_parameters(remove_duplicate=False))
        state: dict[str, torch.Tensor] = {}
        for name, value in module.state_dict().items():  # same order on every rank: the gathers line up
            if name in parameters:
                value = _full_parameter(parameters[name], safe_get_full_fp32_param)
            if self.env.is_main:
                state[name] = value.detach().float().cpu().clone() if value.is_floating_point() else value.cpu()
        return state if self.env.is_main else None

    @classmethod
    def owns(cls, folder: Path) -> bool:
        return (Path(folder) / CHECKPOINT_TAG).is_dir()

    @classmethod
    def read_full_state(cls, folder: Path) -> dict[str, torch.Tensor]:
        """The fp32 master weights, merged from the ZeRO partitions by DeepSpeed's own zero_to_fp32 helper."""
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

        trainable_only = cls.read_record(folder).get("trainable_only", False)
        state = get_fp32_state_dict_from_zero_checkpoint(
            str(folder), tag=CHECKPOINT_TAG, exclude_frozen_parameters=trainable_only
        )
        return {name: tensor.contiguous() for name, tensor in state.items()}


def _full_parameter(parameter: nn.Parameter, get_fp32) -> torch.Tensor:
    """The whole fp32 master copy of a trained parameter; a frozen one (LoRA base) is gathered as stored."""
    full = get_fp32(parameter)
    if full is not None:
        return full
    if hasattr(parameter, "ds_id"):  # ZeRO-3 partitioned but not optimised: gather it
        import deepspeed

        with deepspeed.zero.GatheredParameters([parameter]):
            return parameter.detach().clone()
    return parameter


@contextlib.contextmanager
def _zero3_loading(ds_config: dict) -> Iterator[None]:
    """transformers' switch for loading under zero.Init: a live `HfDeepSpeedConfig` (it keeps only a weak
    reference). Alive for the load only: left on, every later `from_pretrained` in this process (rank 0 reading
    `final/` to sample) would also enter zero.Init, a collective that the other ranks never join."""
    import deepspeed
    from deepspeed.accelerator import get_accelerator
    from transformers.integrations.deepspeed import HfDeepSpeedConfig, unset_hf_deepspeed_config

    # zero.Init reads the world size from DeepSpeed's comm layer, which deepspeed.initialize would only set up
    # later: adopt torch's process group now, as initialize does (dist_init_required=False: it exists).
    deepspeed.init_distributed(get_accelerator().communication_backend_name(), dist_init_required=False)
    switch = HfDeepSpeedConfig(ds_config)
    try:
        yield
    finally:
        unset_hf_deepspeed_config()
        del switch


def _no_shared_memory_op_build() -> None:
    """On CPU, DeepSpeed's communication backend JIT-compiles its shared-memory op (`deepspeed_shm_comm`: g++,
    25-115 s on the first run in each install location) when it starts, although only its inference all-reduce
    uses it: training's collectives go through torch.distributed (gloo) either way. Marking the op incompatible
    for this process makes DeepSpeed skip it, as on a platform without the op. DeepSpeed computes this dict once
    per process and reads it again at start-up, so the edit holds (deepspeed/ops/__init__.py)."""
    import deepspeed.ops

    try:
        compatible = deepspeed.ops.__compatible_ops__
    except AttributeError:  # another DeepSpeed layout: leave its own decision alone
        return
    compatible["deepspeed_shm_comm"] = False
