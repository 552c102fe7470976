"""A plan as a table for people and as one JSON object for scripts and CI."""

from __future__ import annotations

from typing import Any

from ftdist.planner.candidates import Candidate
from ftdist.planner.hardware import GiB
from ftdist.planner.recommend import SAFETY, Plan, Row

COLUMNS = ("weights", "lora_weights", "gradients", "master_weights", "optimizer", "activations", "logits")


UNIT = {"GiB": GiB, "MiB": 2**20}


def _unit(plan: Plan) -> str:
    """GiB for real models, MiB for the tiny ones (whose plans would read 0.0 everywhere)."""
    return "GiB" if max(r.estimate.needs for r in plan.rows) >= GiB else "MiB"


def render_table(plan: Plan, own: Candidate | None = None) -> str:
    """The plan as a table; `own` (the config's own strategy) is marked with `*`."""
    w, shape = plan.workload, plan.workload.shape
    head = [
        f"model     {shape.name}: {shape.total_params() / 1e9:.2f} B parameters, {w.trainable_params():,} train "
        f"({w.method}) [{'from the shipped catalogue' if shape.source == 'catalogue' else shape.source}]",
        f"batch     {w.micro_batch} x {w.seq_len} tokens per micro-step, accumulation {w.grad_accum}, optimizer "
        f"{w.optimizer}, precision {plan.rows[0].estimate.precision}",
        f"hardware  {plan.hardware.describe()}",
        *[f"note      {n}" for n in (*shape.notes, *objective_notes(w))],
        "",
    ]
    names = [
        "strategy",
        "world",
        "weights",
        "grads",
        "optim",
        "activ",
        "logits",
        "other",
        "peak",
        "need",
        "host",
        "fits",
        "s/step",
        "tok/s",
    ]
    lines = [names]
    unit = _unit(plan)

    def _gib(value: int | float) -> str:
        return f"{value / UNIT[unit]:.1f}"

    for row in plan.rows:
        d, est = row.estimate.device, row.estimate
        main = ("weights", "gradients", "optimizer", "activations", "logits")
        weights = d.get("weights", 0) + d.get("lora_weights", 0) + d.get("master_weights", 0)
        other = sum(v for k, v in d.items() if k not in (*main, "lora_weights", "master_weights"))
        fits = "yes" if row.fits_with_margin else ("tight" if row.fits else "no")
        if row.fits and row.pages:
            fits += " (pages)"
        lines.append(
            [
                row.candidate.label + (" *" if row.candidate == own else ""),
                str(row.candidate.world),
                _gib(weights),
                _gib(d.get("gradients", 0)),
                _gib(d.get("optimizer", 0)),
                _gib(d.get("activations", 0)),
                _gib(d.get("logits", 0)),
                _gib(other),
                _gib(est.peak),
                _gib(est.needs),
                _gib(row.host_need),
                fits,
                f"{row.seconds['total']:.2f}",
                f"{row.tokens_per_s:,.0f}",
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(names))]
    table = [
        "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(line, widths)))
        for line in lines
    ]
    foot = [
        "",
        f"{unit} per device; components are each one's largest size, `peak` the largest phase (forward, backward, "
        "optimizer step), `need` = peak + framework margin (CUDA context, allocator slack, NCCL buffers); "
        f"`host` {unit} per node at its worst moment, the figure the fit check uses (the model load, or the "
        f"offloaded states allocated after it). `fits`: yes with {SAFETY:.0%} headroom on the device; "
        f" `tight` fits with less; `(pages)` fits once the paged optimizer moves state to the host.",
    ]
    if own is not None and any(row.candidate == own for row in plan.rows):
        foot.append("* the config's own strategy")
    hidden: dict[str, list[str]] = {}  # a "no" the device columns do not explain (host RAM, the device rule)
    for row in plan.rows:
        if not row.fits and row.why_not and not row.why_not.endswith("per device"):
            hidden.setdefault(row.why_not, []).append(row.candidate.label)
    for why, labels in hidden.items():
        every = len(labels) == len(plan.rows)
        if not (every and plan.best is None):  # then the advice below says it, as "cannot run it"
            foot.append(f"no ({'every row' if every else ', '.join(labels)}): {why}")
    if plan.best:
        foot.append(f"recommended: {plan.reason}")
        foot.append(f"  strategy: {plan.best.candidate.strategy_section()}")
    else:
        foot.append("nothing fits on this hardware. What would:")
        foot.extend(f"  - {s}" for s in plan.suggestions)
    return "\n".join(head + table + foot)


def row_json(row: Row) -> dict[str, Any]:
    est = row.estimate
    return {
        "strategy": row.candidate.label,
        "section": row.candidate.strategy_section(),
        "world": row.candidate.world,
        "device_bytes": dict(est.device),
        "host_bytes": dict(est.host),
        "host_need_bytes": row.host_need,  # what the fit check compares with the node's RAM
        "phases_bytes": dict(est.phases),
        "peak_bytes": est.peak,
        "margin_bytes": est.margin,
        "need_bytes": est.needs,
        "pageable_bytes": est.pageable,
        "paged_to_host_bytes": row.pages,
        "fits": row.fits,
        "fits_with_margin": row.fits_with_margin,
        "why_not": row.why_not,
        "step_seconds": row.seconds,
        "tokens_per_s": row.tokens_per_s,
        "notes": est.notes,
    }


def plan_json(plan: Plan) -> dict[str, Any]:
    w, shape = plan.workload, plan.workload.shape
    hw = plan.hardware
    return {
        "model": {
            "name": shape.name,
            "source": shape.source,
            "from_catalogue": shape.source == "catalogue",
            "parameters": shape.total_params(),
            "trainable": w.trainable_params(),
            "notes": list(shape.notes),
        },
        "workload": {
            "method": w.method,
            "optimizer": w.optimizer,
            "seq_len": w.seq_len,
            "micro_batch": w.micro_batch,
            "grad_accum": w.grad_accum,
            "attention": w.attention,
        },
        "hardware": {
            "device": hw.device.name,
            "device_bytes": hw.device.memory,
            "gpus_per_node": hw.gpus_per_node,
            "nodes": hw.nodes,
            "host_bytes": hw.host_memory,
        },
        "strategies": [row_json(r) for r in plan.rows],
        "recommended": row_json(plan.best) if plan.best else None,
        "reason": plan.reason,
        "what_would_fit": plan.suggestions,
    }


def objective_notes(w) -> list[str]:
    """What a preference objective adds to the step, in words (the figures already include it)."""
    if w.objective == "sft":
        return []
    pair = "the response and its KL sequence" if w.objective == "kto" else "chosen and rejected"
    notes = [f"{w.objective}: each row is two sequences ({pair}); the micro-batch above counts sequences"]
    if w.reference == "adapters":
        notes.append("reference: this model with its adapters disabled, one more forward without gradients per step")
    elif w.reference == "precompute":
        notes.append(
            "reference: scores computed once by the starting model before the first step (one pass over "
            "the data without gradients), then read by row: no second copy of the model"
        )
    else:
        notes.append("reward: a one-output score head replaces the vocabulary's logits")
    return notes
