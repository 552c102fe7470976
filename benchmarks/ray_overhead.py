"""Ray Train vs torchrun on this machine: per-step time, its ratio, and the fixed start-up cost of each.

Both launchers run the same tiny Llama (cluster_configs/tiny_llama_full.yaml) with 2 CPU workers under DDP,
checkpointing every 50 steps. Each launcher runs twice, for N1 and N2 steps, timed from the outside:
    wall(N) = fixed + N * per_step
so per_step = (wall(N2) - wall(N1)) / (N2 - N1) includes everything a step costs in steady state (compute,
all-reduce, checkpoint saves and, under Ray, the checkpoint reports), and fixed = wall(N1) - N1 * per_step is
the start-up and shutdown cost. The median compute time of one step (the trainer's own tokens/s) is shown too.
The Ray head is started once (its start-up is printed apart: a cluster outlives the jobs it runs).

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 python benchmarks/ray_overhead.py [--steps 20 420] [--intervals 0.5 2.0]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = "cluster_configs/tiny_llama_full.yaml"
COMMON = ["strategy=ddp", "checkpoint.every=50", "train.eval_every=0", "train.log_every=1", "tracking.progress=false"]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return time.perf_counter() - started


def compute_step_s(run_dir: Path) -> float:
    """Median seconds of one optimizer step, from the trainer's tokens/s (2 workers x 8 x 64 tokens per step)."""
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    tokens_per_step = 2 * 8 * 64
    return statistics.median(tokens_per_step / e["tokens_per_s"] for e in events[1:] if "tokens_per_s" in e)


def fit(walls: dict[int, float]) -> tuple[float, float]:
    (n1, w1), (n2, w2) = sorted(walls.items())
    per_step = (w2 - w1) / (n2 - n1)
    return per_step, w1 - n1 * per_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, nargs=2, default=[20, 420])
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.5, 2.0], help="health-check intervals")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", None)
    work = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    rows: dict[str, tuple[float, float, float]] = {}
    try:
        walls, compute = {}, 0.0
        for steps in args.steps:
            out = work / f"torchrun-{steps}"
            command = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "ftdist", "train", CONFIG]
            walls[steps] = timed([*command, f"output_dir={out}", f"train.max_steps={steps}", *COMMON], env)
            compute = compute_step_s(out)
        rows["torchrun"] = (*fit(walls), compute)

        started = time.perf_counter()
        head = ["ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "6399", "--num-cpus", "2"]
        subprocess.run(
            [*head, "--include-dashboard=false", "--disable-usage-stats"], env=env, check=True, capture_output=True
        )
        head_s = time.perf_counter() - started
        try:
            for interval in args.intervals:
                walls = {}
                for steps in args.steps:
                    out = work / f"ray-{interval}-{steps}"
                    command = [
                        sys.executable,
                        "-m",
                        "launch.ray_train",
                        "--address",
                        "127.0.0.1:6399",
                        "--workers",
                        "2",
                    ]
                    overrides = [
                        f"output_dir={out}",
                        f"train.max_steps={steps}",
                        f"ray.health_check_interval_s={interval}",
                    ]
                    walls[steps] = timed([*command, CONFIG, *overrides, *COMMON], env)
                    compute = compute_step_s(out)
                rows[f"ray (health check {interval:g} s)"] = (*fit(walls), compute)
        finally:
            subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    base = rows["torchrun"][0]
    print(
        f"tiny Llama, 2 CPU workers, DDP, checkpoint every 50 steps, runs of {args.steps[0]} and {args.steps[1]} steps"
    )
    print(f"ray head start-up (once per cluster): {head_s:.1f} s")
    print(f"{'launcher':28} {'s/step':>8} {'ratio':>6} {'fixed s':>8} {'compute s/step':>15}")
    for name, (per_step, fixed, compute) in rows.items():
        print(f"{name:28} {per_step:8.3f} {per_step / base:6.2f} {fixed:8.1f} {compute:15.4f}")


if __name__ == "__main__":
    main()
