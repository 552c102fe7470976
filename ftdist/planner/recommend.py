"""Which candidates fit, which is fastest, and, when none fits, the smallest hardware or method that would.

A candidate fits when its device need (peak + framework margin) is within the device memory, or within it
once a paged optimizer's state has moved to the host, and its host need is within the node's RAM. It is
*recommended* only with SAFETY headroom on the device, fastest first (tokens per second of the whole job).
The method is never changed by a recommendation; other methods appear only in the "nothing fits" advice.
A candidate the device cannot run at all (`ftdist.device_rules`, the rule preflight applies: QLoRA or a
bitsandbytes optimizer on Apple MPS, several processes on one Apple GPU, bf16 on a T4) never fits, whatever
its memory, so neither a recommendation nor a suggestion offers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ftdist.device_rules import DeviceJob, device_problems
from ftdist.planner.analytic import Estimate, estimate
from ftdist.planner.candidates import Candidate, enumerate_candidates
from ftdist.planner.cost import step_seconds, tokens_per_second
from ftdist.planner.hardware import GPU_LADDER, PRESETS, GiB, Hardware, human
from ftdist.planner.workload import Workload

SAFETY = 0.10  # headroom a recommendation keeps on the device (allocator spikes, longer sequences)


@dataclass
class Row:
    candidate: Candidate
    estimate: Estimate
    seconds: dict[str, float]
    tokens_per_s: float
    fits: bool
    fits_with_margin: bool
    pages: int = 0  # bytes a paged optimizer moves to the host to fit
    why_not: str = ""
    refused: tuple[str, ...] = ()  # what the device cannot run at all (ftdist.device_rules), whatever the memory
    host_need: int = 0  # bytes of host RAM per node at the worst moment (Estimate.host_peak)


@dataclass
class Plan:
    workload: Workload
    hardware: Hardware
    rows: list[Row]
    best: Row | None
    reason: str
    suggestions: list[str] = field(default_factory=list)


def evaluate(workload: Workload, candidate: Candidate, hardware: Hardware) -> Row:
    est = estimate(workload, candidate, hardware)
    memory = hardware.device.memory
    pages = max(0, min(est.pageable, est.needs - memory)) if est.needs > memory else 0
    host_need = est.host_peak
    host_ok = hardware.device.kind != "cuda" or host_need <= hardware.host_memory
    refused = device_problems(device_job(workload, candidate, hardware))
    device_ok = est.needs - pages <= memory and not refused
    why = ""
    if refused:
        why = refused[0]
    elif not device_ok:
        why = f"needs {human(est.needs)} per device"
    elif not host_ok:
        why = f"needs {host_need / GiB:.0f} GiB host RAM per node"
    seconds = step_seconds(workload, candidate, hardware, est)
    margin_ok = device_ok and host_ok and est.needs - pages <= (1 - SAFETY) * memory
    return Row(
        candidate,
        est,
        seconds,
        tokens_per_second(workload, candidate, seconds["total"]),
        device_ok and host_ok,
        margin_ok,
        pages,
        why,
        tuple(refused),
        host_need,
    )


def device_job(workload: Workload, candidate: Candidate, hardware: Hardware) -> DeviceJob:
    """What `candidate` asks of `hardware`'s devices, in the terms of the rule preflight applies."""
    device = hardware.device
    return DeviceJob(
        method=workload.method,
        optimizer=workload.optimizer,
        precision=workload.precision,
        device=device.kind,
        processes=candidate.world,
        gpu_name=device.name,
        gpu_bf16=device.bf16,
        optimizer_fallback=workload.optimizer_fallback,
    )


def plan(workload: Workload, hardware: Hardware, candidates: list[Candidate] | None = None) -> Plan:
    rows = [evaluate(workload, cand, hardware) for cand in candidates or enumerate_candidates(workload, hardware)]
    best = pick(rows)
    if best is not None:
        return Plan(workload, hardware, rows, best, _reason(best, rows))
    refusals = list(dict.fromkeys(problem for row in rows for problem in row.refused))
    advice = [f"as configured, {hardware.device.name} cannot run it: {problem}" for problem in refusals]
    other = [line for line in what_would_fit(workload, hardware) if not (advice and line == NOTHING_FITS)]
    return Plan(workload, hardware, rows, None, "nothing fits", advice + other)


def pick(rows: list[Row]) -> Row | None:
    """Fastest of those that fit with headroom; failing that, fastest of those that fit at all. Within 1% of
    the fastest (the cost model cannot tell them apart), the simplest: the first in enumeration order."""
    for pool in ([r for r in rows if r.fits_with_margin], [r for r in rows if r.fits]):
        if pool:
            fastest = max(r.tokens_per_s for r in pool)
            return next(r for r in pool if r.tokens_per_s >= 0.99 * fastest)
    return None


def _reason(best: Row, rows: list[Row]) -> str:
    fitting = sum(r.fits for r in rows)
    head = "fits with" if best.fits_with_margin else "fits, but without"
    text = (
        f"{best.candidate.label}: {human(best.estimate.needs)} per device ({head} {SAFETY:.0%} headroom), "
        f"fastest of {fitting} that fit at {best.tokens_per_s:,.0f} tokens/s"
    )
    if best.pages:
        text += f"; the paged optimizer moves {human(best.pages)} to the host"
    return text


def what_would_fit(workload: Workload, hardware: Hardware) -> list[str]:
    """The smallest change that fits: more devices of this kind, a larger device, then a lighter method."""
    advice = []
    for gpus, nodes in _bigger_worlds(hardware):
        found = _fits_on(workload, hardware.with_world(gpus, nodes))
        if found:
            advice.append(f"{found} with the same method on {hardware.with_world(gpus, nodes).describe()}")
            break
    for key in GPU_LADDER:
        device = PRESETS[key]
        if device.memory > hardware.device.memory:
            bigger = Hardware(device, hardware.gpus_per_node, hardware.nodes, hardware.host_memory)
            found = _fits_on(workload, bigger)
            if found:
                advice.append(f"{found} on {bigger.describe()}")
                break
    lighter = {"pretrain": ("lora", "qlora"), "full": ("lora", "qlora"), "lora": ("qlora",)}.get(workload.method, ())
    # A precision the device lacks (bf16 on a T4) would refuse every lighter method too: try `auto` as well.
    precisions = dict.fromkeys((workload.precision, "auto"))
    options = [(m, p, hw) for m in lighter for hw in (hardware.with_world(1, 1), hardware) for p in precisions]
    for method, precision, hw in options:
        found = _fits_on(replace(workload.with_method(method), precision=precision), hw)
        if found:
            also = "" if precision == workload.precision else f", precision: {precision}"
            advice.append(f"method: {method}{also} ({found}) on {hw.describe()}")
            break
    return advice or [NOTHING_FITS]


NOTHING_FITS = "nothing in the presets fits: shorten data.seq_len or train.micro_batch_size"


def _fits_on(workload: Workload, hardware: Hardware) -> str:
    best = pick([evaluate(workload, cand, hardware) for cand in enumerate_candidates(workload, hardware)])
    return f"{best.candidate.label} at {human(best.estimate.needs)} per device" if best else ""


def _bigger_worlds(hardware: Hardware) -> list[tuple[int, int]]:
    worlds = [(g, 1) for g in (2, 4, 8) if g > hardware.world] + [(8, m) for m in (2, 4, 8, 16)]
    return [(g, m) for g, m in worlds if g * m > hardware.world]
