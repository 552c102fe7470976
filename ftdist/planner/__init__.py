"""The fit planner: will a run fit, and what is the fastest way that fits? (docs/planner.md)

    plan_config(config, hardware) -> Plan            every strategy the hardware allows, per device
    recommend_for_config(config, world, hardware)    `strategy: auto`: (strategy section, reason)
    predict_peak_bytes(config, world, hardware)      the analytic peak of the config's own strategy
    build_hardware(gpu, gpu_mem, gpus, nodes, cpu_mem)

Light on purpose: nothing here imports torch (only `ftdist.planner.simulate` does, for `--simulate`).
"""

from ftdist.planner.for_config import plan_config, predict_peak_bytes, recommend_for_config
from ftdist.planner.hardware import Hardware, build_hardware, parse_bytes, preset

__all__ = [
    "Hardware",
    "build_hardware",
    "parse_bytes",
    "plan_config",
    "predict_peak_bytes",
    "preset",
    "recommend_for_config",
]
