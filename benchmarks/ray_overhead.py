"""Ray Train vs torchrun on this machine: per-step time, its ratio, and the fixed start-up cost of each.

Both launchers run the same tiny Llama (cluster_configs/tiny_llama_full.yaml) with 2 CPU workers under DDP,
checkpointing every 50 (or 20) steps. Each launcher runs twice, for N1 and N2 steps, timed from the outside:
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
COMMON = ["strategy=ddp", "train.eval_every=0", "train.log_every=1", "tracking.progress=false"]


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
    parser.add_argument("--every", type=int, nargs="+", default=[50, 20], help="checkpoint intervals (steps)")
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.5, 2.0], help="health-check intervals")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", None)
    work = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    started = time.perf_counter()
    head = ["ray", "start", "--head", "--node-ip-address", "127.0.0.1", "--port", "6399", "--num-cpus", "2"]
    subprocess.run(
        [*head, "--include-dashboard=false", "--disable-usage-stats"], env=env, check=True, capture_output=True
    )
    head_s = time.perf_counter() - started
    # Every (launcher, checkpoint interval) pair runs N1 steps, then every pair runs N2 steps: interleaving
    # spreads the load other processes put on the machine over all rows instead of biasing one launcher.
    launchers = [("torchrun", None)] + [(f"ray, health check {i:g} s", i) for i in args.intervals]
    rows = [(name, interval, every) for every in args.every for name, interval in launchers]
    walls: dict[tuple, dict[int, float]] = {row: {} for row in rows}
    compute: dict[tuple, float] = {}
    try:
        for steps in args.steps:
            for row in rows:
                name, interval, every = row
                out = work / f"{len(compute)}-{steps}-{every}-{interval}"
                overrides = [f"output_dir={out}", f"train.max_steps={steps}", f"checkpoint.every={every}", *COMMON]
                if interval is None:
                    command = ["torchrun", "--standalone", "--nproc_per_node", "2", "-m", "ftdist", "train", CONFIG]
                else:
                    command = [
                        sys.executable,
                        "-m",
                        "launch.ray_train",
                        "--address",
                        "127.0.0.1:6399",
                        "--workers",
                        "2",
                    ]
                    command += [CONFIG, f"ray.health_check_interval_s={interval}"]
                walls[row][steps] = timed([*command, *overrides], env)
                compute[row] = compute_step_s(out)
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(work, ignore_errors=True)

    print(f"tiny Llama, 2 CPU workers, DDP; runs of {args.steps[0]} and {args.steps[1]} steps")
    print(f"ray head start-up (once per cluster): {head_s:.1f} s")
    print(f"{'launcher':26} {'ckpt every':>10} {'s/step':>8} {'ratio':>6} {'fixed s':>8} {'compute s/step':>15}")
    for every in args.every:
        base = fit(walls[("torchrun", None, every)])[0]
        for name, interval in launchers:
            per_step, fixed = fit(walls[(name, interval, every)])
            row = f"{name:26} {every:10d} {per_step:8.4f} {per_step / base:6.2f} {fixed:8.1f}"
            print(f"{row} {compute[(name, interval, every)]:15.4f}")


if __name__ == "__main__":
    main()
