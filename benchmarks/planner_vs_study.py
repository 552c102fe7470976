"""The planner's predictions beside the enterprise-guidelines study's A100 80 GB figures.

    python benchmarks/planner_vs_study.py

The study states model, method and GPU; it leaves batch, sequence length, LoRA rank/targets, attention and
the base's load dtype unstated. The settings assumed here are printed on every line. Two rows per LoRA case:
the study's scripts load the base in 16-bit ("16-bit base"); ftdist loads it in fp32 ("ftdist as shipped",
models.load_pretrained), which costs 2 bytes more per parameter. Full fine-tuning is shown in pure 16-bit with
a paged 8-bit AdamW (the study's "paged Adam filling 80 GB") and as ftdist runs it (fp32 master + autocast).
"""

from __future__ import annotations

from dataclasses import replace

from ftdist.planner.candidates import Candidate
from ftdist.planner.catalogue import catalogue_shape
from ftdist.planner.hardware import GB, PRESETS, GiB, Hardware
from ftdist.planner.recommend import evaluate
from ftdist.planner.workload import Workload

A100 = Hardware(PRESETS["a100-80"])
LLAMA7, LLAMA13, LLAMA70 = (f"meta-llama/Llama-2-{s}-hf" for s in ("7b", "13b", "70b"))
CODE7 = "codellama/CodeLlama-7b-hf"


def lora(model: str, batch: int, seq: int, **kw) -> Workload:
    return Workload(catalogue_shape(model), "lora", "adamw", "bf16", seq, batch, lora_rank=8, lora_dropout=0.05, **kw)


def qlora(model: str, batch: int, seq: int) -> Workload:
    return Workload(
        catalogue_shape(model),
        "qlora",
        "paged_adamw_8bit",
        "bf16",
        seq,
        batch,
        lora_rank=64,
        lora_targets="all-linear",
        lora_dropout=0.1,
    )


def full(model: str, batch: int, seq: int, **kw) -> Workload:
    return Workload(catalogue_shape(model), "full", "paged_adamw_8bit", "fp16", seq, batch, **kw)


# (study case, study figure in GB, workload, checkpointing, what was assumed)
CASES = [
    ("7B LoRA", "~18", lora(LLAMA7, 2, 2048, param_bytes=2), True, "b2 s2048 r8 q,v ckpt, 16-bit base"),
    ("7B LoRA", "~18", lora(LLAMA7, 2, 2048), True, "b2 s2048 r8 q,v ckpt, ftdist as shipped"),
    ("13B LoRA", "~26", lora(LLAMA13, 2, 2048, param_bytes=2), True, "b2 s2048 r8 q,v ckpt, 16-bit base"),
    ("13B LoRA", "~26", lora(LLAMA13, 1, 2048, param_bytes=2), True, "b1 s2048 r8 q,v ckpt, 16-bit base"),
    ("13B LoRA", "~26", lora(LLAMA13, 2, 2048), True, "b2 s2048 r8 q,v ckpt, ftdist as shipped"),
    ("70B QLoRA", "~65", qlora(LLAMA70, 4, 2048), True, "b4 s2048 r64 all-linear ckpt, paged 8-bit AdamW"),
    ("70B QLoRA", "~65", qlora(LLAMA70, 4, 4096), True, "b4 s4096 r64 all-linear ckpt, paged 8-bit AdamW"),
    ("Code Llama 7B QLoRA", "15", qlora(CODE7, 4, 2048), True, "b4 s2048 r64 all-linear ckpt"),
    ("Code Llama 7B QLoRA", "15", qlora(CODE7, 2, 4096), True, "b2 s4096 r64 all-linear ckpt"),
    ("7B full FT", "fills 80", full(LLAMA7, 4, 2048, param_bytes=2), True, "b4 s2048 fp16 pure 16-bit, paged 8-bit"),
    ("7B full FT", "fills 80", full(LLAMA7, 2, 4096, param_bytes=2), True, "b2 s4096 fp16 pure 16-bit, paged 8-bit"),
    ("7B full FT", "fills 80", full(LLAMA7, 4, 2048, param_bytes=2), False, "b4 s2048 fp16 pure 16-bit, no ckpt"),
    ("7B full FT", "fills 80", full(LLAMA7, 2, 2048, param_bytes=2), False, "b2 s2048 fp16 pure 16-bit, no ckpt"),
    ("7B full FT", "fills 80", full(LLAMA7, 2, 2048), True, "b2 s2048 fp16, ftdist as shipped (fp32 master)"),
    ("13B full FT", "fills 80", full(LLAMA13, 2, 2048, param_bytes=2), True, "b2 s2048 fp16 pure 16-bit, paged 8-bit"),
    ("13B full FT", "fills 80", full(LLAMA13, 4, 4096, param_bytes=2), True, "b4 s4096 fp16 pure 16-bit, paged 8-bit"),
]


def main() -> None:
    print(f"{'study case':<20} {'study GB':>9} {'peak GB':>8} {'need GB':>8} {'pages GB':>8}  fits  settings assumed")
    for case, figure, workload, ckpt, assumed in CASES:
        row = evaluate(replace(workload), Candidate("single", 1, ckpt), A100)
        est = row.estimate
        fits = "yes" if row.fits_with_margin else ("tight" if row.fits else "no")
        print(
            f"{case:<20} {figure:>9} {est.peak / GB:8.1f} {est.needs / GB:8.1f} {row.pages / GB:8.1f}  {fits:<5} "
            f"{assumed}"
        )
    print(
        f"\nGB = 10^9 bytes (the study's unit); 1 GiB = {GiB / GB:.3f} GB. 'need' adds the CUDA context, allocator "
        "slack and NCCL margin; 'pages' is paged optimizer state that moves to host RAM to fit."
    )


if __name__ == "__main__":
    main()
