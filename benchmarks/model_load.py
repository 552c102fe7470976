"""How much host memory loading the model costs a job, by rank count: the summed RSS of every rank at once.

    python benchmarks/model_load.py [--phase load|step] [--repo PATH] [--ranks 1 2 4] [--strategies fsdp zero3 zero2]

For each strategy (LoRA on FSDP2, ZeRO-3 or ZeRO-2; CPU, gloo) and rank count, N processes set up a trainer on a
Llama built from config and saved to disk (hidden 1024, 20 layers, vocab 32000: 0.32 B parameters, 1.19 GiB in
fp32), then the same with a tiny Llama (hidden 64, 2 layers). `--phase load` (the default) stops after setup:
the model loaded and wrapped by the strategy, nothing computed (torchrun running this file's `--worker`);
`--phase step` runs `ftdist launch local` for one training step and the export of final/ (what issue 22 first
measured), which adds what one step of the model costs each rank (FSDP2 all-gathers the root and a layer on
every rank). The figure is the peak of the summed RSS of the launch's whole process tree (sampled every 20 ms),
big minus tiny: what the model costs the job, in fp32 copies of it. `--repo` runs another checkout's ftdist
(e.g. /work/main, for "before"), so the two can be compared side by side. A benchmark that prints figures, not
a test: on a busy 2-core machine one row takes a minute or two.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

GiB = 1 << 30
BIG = {"hidden_size": 1024, "num_hidden_layers": 20, "num_attention_heads": 16, "intermediate_size": 2816}
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 176}
STRATEGIES = {
    "fsdp": ["strategy=fsdp"],
    "zero3": ["strategy=deepspeed", "strategy.zero_stage=3"],
    "zero2": ["strategy=deepspeed", "strategy.zero_stage=2"],
}
CONFIG = "cluster_configs/tiny_llama_full.yaml"
RUN = [
    "method=lora",
    "model.scratch=null",
    "train.max_steps=1",
    "train.micro_batch_size=1",
    "train.eval_every=0",
    "checkpoint.every=0",
    "data.seq_len=64",
    "tracking.progress=false",
    "tracking.plots=false",
]


def save_model(folder: Path, shape: dict) -> tuple[Path, int]:
    """A random Llama of `shape` saved as safetensors (built from config: no download). Returns (folder, params)."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(vocab_size=32000, max_position_embeddings=256, tie_word_embeddings=False, **shape)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(folder, safe_serialization=True)
    return folder, sum(p.numel() for p in model.parameters())


def peak_rss(command: list[str], cwd: Path, env: dict) -> tuple[int, int]:
    """Run `command`; (the sum of each process's own peak RSS, from the kernel's VmHWM, and the peak of the summed
    RSS, sampled every 20 ms) over it and all its descendants. The first is what a node must hold if every rank
    peaks at once (ranks that load one after another can peak apart, which the second would hide)."""
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root, peak, own = psutil.Process(process.pid), [0], {}

    def sample() -> None:
        while process.poll() is None:
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    rss = proc.memory_info().rss
                    own[proc.pid] = max(own.get(proc.pid, 0), rss, _high_water(proc.pid))
                    total += rss
            except psutil.Error:
                pass
            peak[0] = max(peak[0], total)
            time.sleep(0.02)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    _, stderr = process.communicate()
    watcher.join()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr.decode()[-3000:]}")
    return sum(own.values()), peak[0]


def _high_water(pid: int) -> int:
    """The kernel's own peak RSS of a process (VmHWM): exact between samples, which a busy machine spaces out."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def run(repo: Path, phase: str, strategy: str, ranks: int, model: Path, out: Path, precision: str) -> tuple[int, int]:
    if phase == "step":
        command = [sys.executable, "-m", "ftdist", "launch", "local", "--nproc", str(ranks), CONFIG, *RUN]
    else:
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks)]
        command = [*torchrun, str(Path(__file__).resolve()), "--worker", CONFIG, *RUN]
    command += [*STRATEGIES[strategy], f"model.path={model}", "model.tokenizer=char", f"output_dir={out}"]
    command += [f"precision={precision}"]
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    return peak_rss(command, repo, env)


def worker(config: str, overrides: list[str]) -> None:
    """One rank of `--phase load`: the trainer's setup (data, model materialised and wrapped), then close."""
    from ftdist.trainer import Trainer

    trainer = Trainer(config, overrides)
    trainer.setup()
    trainer.close()


def main() -> None:
    if sys.argv[1:2] == ["--worker"]:
        return worker(sys.argv[2], sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["load", "step"], default="load")
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=list(STRATEGIES))
    parser.add_argument("--precision", default="auto", help="the runs' precision (fp32: the issue's copies)")
    parser.add_argument("--out", type=Path, default=None, help="where the models and runs go (default: a temp dir)")
    args = parser.parse_args()
    work = args.out or Path(tempfile.mkdtemp(prefix="model_load_"))
    big, params = save_model(work / "big", BIG)
    tiny, _ = save_model(work / "tiny", TINY)
    copy = 4 * params
    size = f"model {params / 1e9:.2f} B parameters, {copy / GiB:.2f} GiB fp32"
    print(f"repo {args.repo}; phase {args.phase}; precision {args.precision}; {size}")
    print("sum of peaks: each process's own peak RSS, summed; peak of sum: the largest summed RSS at one moment")
    print("strategy  ranks  big GiB  tiny GiB  model GiB  fp32 copies  | peak of sum: model GiB  copies")
    for strategy in args.strategies:
        for ranks in args.ranks:
            runs = [work / f"run-{args.phase}-{strategy}-{ranks}-{m.name}" for m in (big, tiny)]
            (big_own, big_sum), (tiny_own, tiny_sum) = [
                run(args.repo, args.phase, strategy, ranks, m, out, args.precision) for m, out in zip((big, tiny), runs)
            ]
            model, at_once = big_own - tiny_own, big_sum - tiny_sum
            row = (strategy, ranks, big_own / GiB, tiny_own / GiB, model / GiB, model / copy, at_once / GiB)
            print(
                "{:8}  {:5}  {:7.2f}  {:8.2f}  {:9.2f}  {:11.2f}  | {:22.2f}  {:6.2f}".format(*row, at_once / copy),
                flush=True,
            )


if __name__ == "__main__":
    main()
