"""`ftdist plan --simulate`: ftdist's own FSDP2 wrapping on fake tensors, measured by FSDPMemTracker.

The recipe (notes/planner.md): a fake process group of the planned world size (FakeStore, backend "fake"), the
device mesh made outside FakeTensorMode, the HF model built on the meta device (with ftdist's method applied),
then `FullyShardedDataParallel.prepare` from ftdist/strategies/fsdp.py on it (the real wrapping: checkpoint
wrappers, one unit per layer, the root; on meta, its `.to(device)` is a no-op), `to_empty` inside
FakeTensorMode (fake CPU storage: no memory, no data), ftdist's loss and `accumulating`, two real optimizer
steps (AdamW with foreach=False: foreach inflates fake-mode peaks about 13x at world 8), and the tracker's
peak. DDP, DeepSpeed and single are not simulated: DDP's reducer and DeepSpeed's engine allocate their
buffers from materialised parameters at construction, which this order does not give them. CUDA cannot be
faked through FSDP2 on a CPU-only torch, so it simulates on CPU and the CUDA margin is the analytic one.
bitsandbytes (4-bit bases, 8-bit and paged optimizers) cannot run on fake tensors: those plans simulate with a
16-bit base / fp32 AdamW and say so.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ftdist.planner.hardware import GiB
from ftdist.planner.recommend import Plan
from ftdist.planner.workload import chunk_tokens

SIMULATED_STRATEGIES = ("fsdp",)
STEPS = 2  # the optimizer state exists from the first step on: the second step is the steady state
MICRO_STEPS = 2
"""Micro-steps simulated per step, at most: the first holds no accumulated gradients, every later one the same
(the last adds the reduce-scatter), so 2 give the peak of any grad_accum >= 2. The tracker scans every live
tensor on every op, so each micro-step costs a 13B simulation about 30 s."""


def _prepare_with_ftdist_strategy(config: Any, model: nn.Module, world: int, precision: str, build_optimizer):
    """The one call into ftdist/strategies: adapt here if the strategy classes change (prepare stays)."""
    from ftdist.distributed.env import DistEnv
    from ftdist.strategies.fsdp import FullyShardedDataParallel

    # On the meta device, `prepare` leaves the model where it is and fully_shard shards meta parameters.
    strategy = FullyShardedDataParallel(config, DistEnv(world_size=world), torch.device("meta"), _precision(precision))
    return (strategy, *strategy.prepare(model, build_optimizer))


def _precision(name: str):
    """The Precision of a resolved precision name (autocast dtype; no scaler: nothing steps for real)."""
    from ftdist.distributed.device import Precision

    return Precision(name, {"bf16": torch.bfloat16, "fp16": torch.float16}.get(name), False)


def simulate_peak(config: Any, world: int, checkpointing: bool, precision: str = "fp32") -> dict[str, Any]:
    """Tracker peak bytes per rank of the config's model, method and batch under ftdist's fsdp at `world`."""
    import torch.distributed as dist
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.fsdp2_mem_tracker import FSDPMemTracker
    from torch.testing._internal.distributed.fake_pg import FakeStore
    from transformers import AutoModelForCausalLM

    from ftdist.methods import apply_method, method_class
    from ftdist.training.chunked_loss import install_chunked_loss
    from ftdist.training.loss import token_loss_sum
    from ftdist.training.optim import parameter_groups

    notes = []
    raw = config.model_dump()
    raw["strategy"] = {"name": "fsdp", "activation_checkpointing": checkpointing}
    if raw["method"]["name"] == "qlora":
        notes.append("qlora simulated as lora on a 16-bit base (bitsandbytes cannot run on fake tensors)")
        raw["method"]["name"], raw["method"]["quantization"] = "lora", {}
    config = type(config).model_validate(raw)
    hf_config = _hf_config(config)
    if dist.is_initialized():
        dist.destroy_process_group()
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=world)
    try:
        torch.distributed.device_mesh.init_device_mesh("cpu", (world,))  # outside fake mode (see the module doc)
        base_dtype = method_class(config.method.weights).base_dtype(_precision(precision))  # as the trainer loads it
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config, dtype=base_dtype)
        model = apply_method(model, config)
        batch_shape = (config.train.micro_batch_size, config.data.seq_len)

        def build_optimizer(m: nn.Module) -> torch.optim.Optimizer:
            groups = parameter_groups(m, config.optim.weight_decay)
            if config.optim.name == "sgd":
                return torch.optim.SGD(groups, lr=1e-3, momentum=config.optim.momentum, foreach=False)
            return torch.optim.AdamW(groups, lr=1e-3, foreach=False)

        if config.optim.name not in ("adamw", "sgd"):
            notes.append(f"optim {config.optim.name} simulated as fp32 AdamW (bitsandbytes is not fakeable)")
        strategy, model, optimizer = _prepare_with_ftdist_strategy(config, model, world, precision, build_optimizer)
        chunk = chunk_tokens(config, hf_config.vocab_size)
        head = install_chunked_loss(model, chunk)  # the loss the trainer would compute
        with FakeTensorMode(allow_non_fake_inputs=True):
            model.to_empty(device="cpu")  # swaps in fake CPU storage; the optimizer keeps the same parameters
            ids = torch.randint(0, hf_config.vocab_size, batch_shape)
            batch = {"input_ids": ids, "labels": ids.clone()}
            tracker = FSDPMemTracker(model, optimizer)
            tracker.track_inputs((batch,))
            micro_steps = min(config.train.grad_accum, MICRO_STEPS)
            with tracker:
                for _ in range(STEPS):
                    for micro in range(micro_steps):
                        with strategy.accumulating(model, last_micro_step=micro == micro_steps - 1):
                            token_loss_sum(model, batch, torch.device("cpu"), head).backward()
                        tracker.reset_mod_stats()  # per micro-step (the tracker refuses repeated forwards);
                        # module stats only: the peak snapshot spans every step
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
            peak = tracker.get_tracker_snapshot("peak")
            total = max(stats.get("Total", 0) for stats in peak.values())
    finally:
        dist.destroy_process_group()
    return {"peak_bytes": int(total), "world": world, "checkpointing": checkpointing, "notes": notes}


def _hf_config(config: Any):
    """The transformers config: the model folder's own, a catalogued one, or model.scratch's."""
    from transformers import AutoConfig

    from ftdist.planner.catalogue import CATALOGUE, catalogue_shape
    from ftdist.planner.workload import model_shape

    shape = model_shape(config)
    fields = CATALOGUE.get(shape.name) if shape.source == "catalogue" and catalogue_shape(shape.name) else None
    if shape.source not in ("catalogue", "model.scratch"):
        return AutoConfig.from_pretrained(str(shape.source).removesuffix("config.json"))
    if fields is None:  # model.scratch: the same builder ftdist trains with
        from ftdist.models.scratch import scratch_model_config

        return scratch_model_config(config.model.scratch, shape.vocab, config.data.seq_len)
    fields = dict(fields)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def simulate_plan(config: Any, plan: Plan) -> list[dict[str, Any]]:
    """Simulate each fsdp row of the plan (checkpointing on and off) and put the analytic peak beside it."""
    results = []
    for row in plan.rows:
        cand = row.candidate
        if cand.strategy not in SIMULATED_STRATEGIES or cand.offload_param:
            continue
        sim = simulate_peak(config, cand.world, cand.checkpointing, row.estimate.precision)
        sim.update(
            strategy=cand.label,
            analytic_peak_bytes=row.estimate.peak,
            ratio=row.estimate.peak / sim["peak_bytes"] if sim["peak_bytes"] else None,
        )
        results.append(sim)
    if not results:
        results.append({"strategy": None, "notes": ["no fsdp row to simulate (one device, or method qlora)"]})
    return results


def render_simulation(results: list[dict[str, Any]]) -> str:
    lines = ["", "simulation (ftdist's fsdp on fake tensors, FSDPMemTracker peak per rank, CPU):"]
    for r in results:
        if r.get("strategy") is None:
            lines.extend(f"  {n}" for n in r["notes"])
            continue
        lines.append(
            f"  {r['strategy']:<14} world {r['world']}: simulated {r['peak_bytes'] / GiB:.2f} GiB, "
            f"analytic {r['analytic_peak_bytes'] / GiB:.2f} GiB ({r['ratio']:.2f}x)"
        )
        lines.extend(f"    note: {n}" for n in r["notes"])
    return "\n".join(lines)
