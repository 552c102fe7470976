"""The planner's entry points for a run config: the plan, `strategy: auto`, and the predicted peak.

`config` may be a `RunConfig`, a dict, or a YAML path; `hardware` a `Hardware` or a preset name
("a100-80", "cpu", ...). Nothing here imports torch.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ftdist.errors import FtdistError
from ftdist.planner.candidates import candidate_from_config, enumerate_candidates
from ftdist.planner.hardware import Hardware, human, preset
from ftdist.planner.recommend import Plan, evaluate, pick, plan, what_would_fit
from ftdist.planner.workload import workload_from_config

GPUS_PER_NODE = 8


def _run_config(config: Any) -> Any:
    from ftdist.config import RunConfig, load_config

    return (
        config if isinstance(config, RunConfig) else load_config(config if isinstance(config, dict) else Path(config))
    )


def hardware_for_world(hardware: Hardware | str, world_size: int) -> Hardware:
    """A preset name becomes `world_size` of that device (8 per node); a Hardware must have that world."""
    if isinstance(hardware, str):
        nodes = math.ceil(world_size / GPUS_PER_NODE)
        return Hardware(preset(hardware), gpus_per_node=world_size // nodes, nodes=nodes)
    if hardware.world != world_size:
        raise FtdistError(
            f"strategy: auto was asked to plan for {world_size} processes, but the hardware given has "
            f"{hardware.world} devices ({hardware.describe()}); pass --gpus/--nodes that multiply to {world_size}, "
            "or launch that many processes"
        )
    return hardware


def plan_config(config: Any, hardware: Hardware) -> Plan:
    """Every candidate the hardware allows for this config's model, method and batch."""
    return plan(workload_from_config(_run_config(config)), hardware)


def recommend_for_config(config: Any, world_size: int, hardware: Hardware | str) -> tuple[dict, str]:
    """`strategy: auto`: the `strategy:` section to run with at this world size, and why.

    Only candidates that use exactly `world_size` processes are considered (a torchrun job of N cannot run
    `single`). The method is never changed; when nothing fits, the error says what would.
    """
    run = _run_config(config)
    hw = hardware_for_world(hardware, world_size)
    workload = workload_from_config(run)
    rows = [evaluate(workload, cand, hw) for cand in enumerate_candidates(workload, hw) if cand.world == world_size]
    best = pick(rows)
    if best is None:
        advice = "; or ".join(what_would_fit(workload, hw))
        raise FtdistError(
            f"strategy: auto found nothing that fits {run.method.name} of {workload.shape.name} on {hw.describe()} "
            f"at micro-batch {workload.micro_batch} x {workload.seq_len} tokens. What would: {advice}"
        )
    reason = (
        f"{best.candidate.label} needs {human(best.estimate.needs)} per device on {hw.describe()}, "
        f"the fastest of {sum(r.fits for r in rows)} combinations that fit ({best.tokens_per_s:,.0f} tokens/s "
        "by the planner's cost model)"
    )
    return best.candidate.strategy_section(), reason


def predict_peak_bytes(config: Any, world_size: int, hardware: Hardware | str) -> int:
    """The analytic peak per device for the config's own `strategy:` at `world_size` processes: comparable with
    `torch.cuda.max_memory_allocated()` on a GPU (the CUDA context and allocator slack are not in it) and with
    the RSS rise of a CPU run. For benchmarks/gpu_suite.py and the run-time check."""
    run = _run_config(config)
    hw = hardware_for_world(hardware, world_size)
    row = evaluate(workload_from_config(run), candidate_from_config(run.strategy, world_size), hw)
    return row.estimate.peak
