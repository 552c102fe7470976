"""The run-time check: the planner's estimate when a real run starts, the measured peak when it ends.

GPU: `torch.cuda.max_memory_allocated` (the same quantity the analytic peak predicts: no CUDA context).
CPU/MPS: the process's peak RSS (VmHWM) and its rise over the RSS when the check started (before data and
model), which is what the analytic peak predicts; glibc may hide part of a CPU peak by reusing freed heap
(MALLOC_MMAP_THRESHOLD_=65536 makes large blocks return to the OS, see docs/planner.md).
The check never stops a run: a model the planner cannot read is reported as "no estimate".
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import torch

from ftdist.planner.candidates import candidate_from_config
from ftdist.planner.hardware import Device, Hardware, cpu_device, human
from ftdist.planner.recommend import evaluate
from ftdist.planner.workload import workload_from_config


def _rss_bytes(field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of this process, from /proc (Linux); 0 where there is no /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# Below this predicted peak a CPU run's RSS rise is mostly the libraries it loads (transformers, DeepSpeed
# through save_pretrained, tokenizers), which the planner does not model: the ratio would only mislead.
COMPARABLE_BYTES = 256 * 2**20


class MemoryCheck:
    """Create before the model is built; `banner()` after `prepare`; `measure()` at the end of the run."""

    def __init__(self, config: Any, world_size: int, device: torch.device, precision: str) -> None:
        self.device = device
        self.baseline = _rss_bytes("VmRSS")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.predicted: int | None = None
        self.label = ""
        try:
            hardware = hardware_for_device(device, world_size)
            workload = replace(workload_from_config(config), precision=precision)
            row = evaluate(workload, candidate_from_config(config.strategy, world_size), hardware)
            self.predicted, self.label = row.estimate.peak, row.candidate.label
            self.fits = row.fits
        except Exception as error:  # noqa: BLE001 - an estimate must never stop a run; say why there is none
            self.reason = str(error).split(";")[0]

    def banner(self) -> str:
        if self.predicted is None:
            return f"memory: no planner estimate ({self.reason})"
        where = "per GPU (max_memory_allocated)" if self.device.type == "cuda" else "RSS rise"
        if self.device.type != "cuda" and self.predicted < COMPARABLE_BYTES:
            where = "of model states and activations (the libraries' own memory comes on top)"
        verdict = "" if self.fits else " - MORE than this device has: expect an out-of-memory error"
        return f"memory: planner predicts a peak of {human(self.predicted)} {where} for {self.label}{verdict}"

    def measure(self) -> dict[str, float]:
        """Metrics for metrics.jsonl: measured and predicted peak bytes, and their ratio."""
        if self.device.type == "cuda":
            measured = torch.cuda.max_memory_allocated(self.device)
            metrics = {"peak_memory_bytes": measured}
        else:
            peak = _rss_bytes("VmHWM")
            measured = peak - self.baseline
            metrics = {"peak_rss_bytes": peak, "peak_rss_rise_bytes": measured}
        if self.predicted:
            metrics.update(predicted_peak_bytes=self.predicted, peak_memory_ratio=measured / self.predicted)
        return metrics

    @staticmethod
    def summary(metrics: dict[str, float]) -> str:
        measured = metrics.get("peak_memory_bytes", metrics.get("peak_rss_rise_bytes", 0))
        text = f"memory: measured peak {human(measured)}"
        predicted = metrics.get("predicted_peak_bytes")
        if predicted is None:
            return text
        if predicted < COMPARABLE_BYTES and "peak_rss_rise_bytes" in metrics:
            # A tiny model on a CPU: the RSS rise is the libraries' own memory, which the planner does not model,
            # so a "predicted vs measured" pair would only read as a planner error.
            return text + " (RSS rise; the planner's estimate is compared from 256 MiB up)"
        return text + f", planner predicted {human(predicted)} ({metrics['peak_memory_ratio']:.2f}x)"


def hardware_for_device(device: torch.device, world_size: int) -> Hardware:
    """This job's hardware from the running device (for `strategy: auto` at launch and the run-time check)."""
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    nodes = max(1, world_size // max(1, per_node))
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        gpu = Device(props.name, props.total_memory, 100.0, 100.0, bf16=torch.cuda.is_bf16_supported())
        return Hardware(gpu, gpus_per_node=per_node, nodes=nodes)
    return Hardware(replace(cpu_device(), kind=device.type), gpus_per_node=per_node, nodes=nodes)
