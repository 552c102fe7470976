"""A simple cost model for "fastest": compute, communication per strategy, offload traffic. Seconds per step.

  compute   = tokens x FLOPs per token / (peak TFLOP/s x MFU). FLOPs per token: 6 x matmul parameters for full
              training (2 forward, 4 backward), 4 x for a frozen base (no weight gradients) plus 6 x adapter
              parameters, plus attention 12 x layers x hidden x seq; checkpointing repeats the forward (+2 x).
              A 4-bit base pays about 30% more for de-quantizing.
  comm      = bytes each rank sends / link bandwidth, with ring factor (N-1)/N, half hidden behind compute:
              ddp: all-reduce fp32 gradients once per step (2x); fsdp: all-gather 16-bit params in forward and
              again in backward per micro-step, reduce-scatter fp32 gradients once; zero1/2: reduce-scatter
              16-bit gradients and all-gather updated 16-bit params once per step; zero3: as fsdp with 16-bit
              gradients. Across nodes the link is one NIC per GPU (`inter_node_gbps`).
  offload   = PCIe traffic (gradients down, parameters up; parameter offload moves the shard up twice per
              micro-step) plus the host optimizer step at HOST_ADAM_PARAMS_PER_S per node.
  paging    = paged optimizer bytes that do not fit, moved out and back each step over PCIe.
The constants are round figures; only the ranking of candidates is meant to be right, not the seconds.
"""

from __future__ import annotations

from ftdist.planner.analytic import Estimate
from ftdist.planner.candidates import Candidate
from ftdist.planner.hardware import GB, Hardware
from ftdist.planner.workload import Workload

MFU = 0.4  # fraction of peak a well-fed transformer step reaches on a GPU
HIDDEN_COMM = 0.5  # share of communication overlapped with compute
HOST_ADAM_PARAMS_PER_S = 2e9  # DeepSpeedCPUAdam on a many-core host, per node
QUANT_OVERHEAD = 1.3


def step_seconds(w: Workload, cand: Candidate, hw: Hardware, est: Estimate) -> dict[str, float]:
    """Seconds per optimizer step on each rank, by term, and the total."""
    shape = w.shape
    tokens = w.tokens * w.grad_accum
    matmul = shape.layers * shape.layer_linear_params() + shape.vocab * shape.hidden
    trainable = w.trainable_params()
    forward = 2 * matmul * (QUANT_OVERHEAD if w.method == "qlora" else 1)
    backward = 4 * matmul if not w.adapters else 2 * matmul + 4 * trainable
    attention = 12 * shape.layers * shape.hidden * w.seq_len
    flops = tokens * (forward + backward + attention + (forward + attention / 3 if cand.checkpointing else 0))
    compute = flops / (hw.device.tflops * 1e12 * MFU)

    n, c = cand.world, 4 if est.precision == "fp32" else 2
    ring = (n - 1) / n if n > 1 else 0.0
    total = shape.total_params()
    if cand.strategy == "ddp":
        sent = 2 * 4 * trainable
    elif cand.strategy == "fsdp":
        sent = w.grad_accum * 2 * c * total + 4 * trainable
    elif cand.strategy == "deepspeed" and cand.zero_stage == 3:
        sent = w.grad_accum * 2 * c * total + c * trainable
    elif cand.strategy == "deepspeed":
        sent = c * trainable + c * total
    else:
        sent = 0
    bandwidth = (hw.device.link_gbps if hw.nodes == 1 else min(hw.device.link_gbps, hw.inter_node_gbps)) * GB
    comm = ring * sent / bandwidth * (1 - HIDDEN_COMM) if bandwidth else 0.0

    pcie = hw.device.pcie_gbps * GB
    offload = 0.0
    if cand.offload_optimizer or (cand.strategy == "fsdp" and cand.offload_param):
        offload += (4 + c) * trainable / n / pcie  # gradients down, updated parameters up
        offload += trainable * hw.gpus_per_node / n / HOST_ADAM_PARAMS_PER_S
    if cand.offload_param:
        offload += w.grad_accum * 2 * c * total / n / pcie
    paging = 0.0
    if est.pageable and est.needs > hw.device.memory:
        paging = 2 * min(est.pageable, est.needs - hw.device.memory) / pcie
    seconds = compute + comm + offload + paging
    return {"compute": compute, "communication": comm, "offload": offload, "paging": paging, "total": seconds}


def tokens_per_second(w: Workload, cand: Candidate, seconds: float) -> float:
    """Throughput of the whole job: every rank processes its own micro-batches."""
    return cand.world * w.tokens * w.grad_accum / seconds if seconds > 0 else 0.0
