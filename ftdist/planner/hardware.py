"""The machine a plan is for: device presets, memory sizes like "80GiB", and the host.

Throughput and bandwidth figures are vendor peak numbers (dense bf16/fp16 tensor TFLOP/s, NVLink/PCIe
GB/s); the cost model scales them by a stated utilisation, so only their ratios matter for ranking.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace

from ftdist.errors import FtdistError

MiB = 1024**2
GiB = 1024**3
GB = 1000**3


@dataclass(frozen=True)
class Device:
    """One accelerator (or a CPU socket / Apple SoC standing in for one)."""

    name: str
    memory: int  # bytes the framework may allocate
    tflops: float  # dense 16-bit peak (fp32 for cpu)
    link_gbps: float  # GB/s per device to its peers inside a node (NVLink; PCIe when there is none)
    kind: str = "cuda"  # cuda | mps | cpu
    bf16: bool = True
    pcie_gbps: float = 25.0  # host <-> device, for offload traffic


# The memory is what nvidia-smi reports as total (MiB); for Apple silicon, the share Metal lets one process wire
# (recommendedMaxWorkingSetSize is about 75% of unified memory on machines with more than 36 GB, 66% below).
PRESETS: dict[str, Device] = {
    "t4": Device("T4 16GB", 15360 * MiB, 65, 16, bf16=False, pcie_gbps=12),
    "a10g": Device("A10G 24GB", 23028 * MiB, 125, 16, pcie_gbps=12),
    "l4": Device("L4 24GB", 23034 * MiB, 121, 16, pcie_gbps=25),
    "a100-40": Device("A100 40GB", 40960 * MiB, 312, 300),
    "a100-80": Device("A100 80GB", 81920 * MiB, 312, 300),
    "h100-80": Device("H100 80GB", 81559 * MiB, 989, 450, pcie_gbps=50),
    "h200": Device("H200 141GB", 143771 * MiB, 989, 450, pcie_gbps=50),
    "m1-16": Device("Apple M1 16GB", int(16 * GiB * 0.66), 2.6, 0, kind="mps", bf16=False),
    "m2-24": Device("Apple M2 24GB", int(24 * GiB * 0.66), 3.6, 0, kind="mps", bf16=False),
    "m3-max-64": Device("Apple M3 Max 64GB", int(64 * GiB * 0.75), 14, 0, kind="mps", bf16=False),
    "m3-max-128": Device("Apple M3 Max 128GB", int(128 * GiB * 0.75), 14, 0, kind="mps", bf16=False),
    "m2-ultra-192": Device("Apple M2 Ultra 192GB", int(192 * GiB * 0.75), 27, 0, kind="mps", bf16=False),
}
ALIASES = {"a100": "a100-80", "h100": "h100-80", "a10": "a10g", "h200-141": "h200"}
# Smallest first: the order "what would fit" suggestions walk.
GPU_LADDER = ("t4", "a10g", "a100-40", "a100-80", "h200")


@dataclass(frozen=True)
class Hardware:
    """`gpus_per_node` devices on each of `nodes` nodes, each node with `host_memory` bytes of RAM."""

    device: Device
    gpus_per_node: int = 1
    nodes: int = 1
    host_memory: int = 512 * GiB
    inter_node_gbps: float = 25.0  # GB/s per node (200 Gb/s InfiniBand)

    @property
    def world(self) -> int:
        return self.gpus_per_node * self.nodes

    def describe(self) -> str:
        where = f"{self.nodes} nodes x {self.gpus_per_node}" if self.nodes > 1 else f"{self.gpus_per_node}"
        usable = f"{self.device.memory / GiB:.1f} GiB usable each"
        return f"{where} x {self.device.name} ({usable}), host {self.host_memory / GiB:.0f} GiB per node"

    def with_world(self, gpus_per_node: int, nodes: int = 1) -> Hardware:
        return replace(self, gpus_per_node=gpus_per_node, nodes=nodes)


def human(size: float) -> str:
    """'62.6 GiB', or MiB below a GiB (tiny models)."""
    return f"{size / GiB:.1f} GiB" if size >= GiB else f"{size / MiB:.1f} MiB"


def parse_bytes(text: str, what: str = "--gpu-mem") -> int:
    """'80GiB', '80GB', '80G' (GiB), '512 MiB', or a number of bytes."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([KMGT]?)(i?)B?\s*", text, flags=re.IGNORECASE)
    if not match:
        raise FtdistError(f"{what}={text!r} is not a memory size; write it like 80GiB, 80GB or 512MiB")
    number, prefix, binary = float(match.group(1)), match.group(2).upper(), match.group(3)
    power = " KMGT".index(prefix) if prefix else 0
    base = 1024 if binary or (prefix and not text.strip().upper().endswith("B")) else 1000
    return int(number * base**power)


def preset(name: str) -> Device:
    key = ALIASES.get(name.lower(), name.lower())
    if key == "cpu":
        return cpu_device()
    if key not in PRESETS:
        known = ", ".join([*PRESETS, "cpu"])
        raise FtdistError(f"--gpu {name} is not a known device; use one of {known}, or give --gpu-mem 80GiB")
    return PRESETS[key]


def cpu_device() -> Device:
    """This machine's CPU, with its physical memory as the device memory (training on CPU)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    # Ranks on one CPU talk through gloo over shared memory: a nominal 5 GB/s.
    return Device(f"CPU ({os.cpu_count()} cores)", memory, 0.05 * (os.cpu_count() or 1), 5, kind="cpu", bf16=False)


def build_hardware(gpu: str | None, gpu_mem: str | None, gpus: int, nodes: int, cpu_mem: str | None) -> Hardware:
    """The `ftdist plan` flags as a Hardware: `--gpu` preset, `--gpu-mem` (overrides the preset's size)."""
    if gpus < 1 or nodes < 1:
        raise FtdistError(f"--gpus {gpus} and --nodes {nodes} must be at least 1")
    device = preset(gpu) if gpu else PRESETS["a100-80"]
    if gpu_mem:
        size = parse_bytes(gpu_mem)
        device = replace(device, name=f"{device.name if gpu else 'GPU'} with {size / GiB:.1f} GiB", memory=size)
    host = parse_bytes(cpu_mem, "--cpu-mem") if cpu_mem else _default_host(device)
    return Hardware(device, gpus_per_node=gpus, nodes=nodes, host_memory=host)


def _default_host(device: Device) -> int:
    if device.kind in ("cpu", "mps"):
        return device.memory  # unified: the host is the device
    return 512 * GiB
