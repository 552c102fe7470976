"""Predicted peak against the measured RSS rise of real CPU training steps of tiny models.

    python benchmarks/planner_vs_measured.py            # all cases, one fresh process each

Each case runs in its own interpreter with MALLOC_MMAP_THRESHOLD_=65536 (so freed large blocks go back to the
OS and the peak is visible in RSS; glibc otherwise reuses freed heap and hides it). A thread samples VmRSS
every millisecond; the rise is the sampled maximum minus the RSS just before the model is built, after a
warm-up step of a one-layer copy (thread pools, kernel caches). The step is ftdist's own: SingleDevice.prepare,
build_optimizer (fused AdamW on CPU), token_loss_sum (ftdist.training), two optimizer steps. The
prediction is the planner's `single` estimate on this CPU for the same run config. Target: within 10%.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# (name, family, hidden, layers, vocab, batch, seq, checkpointing, method)
CASES = [
    ("llama b2 s128", "llama", 256, 4, 32000, 2, 128, False, "full"),
    ("llama b4 s256", "llama", 256, 4, 32000, 4, 256, False, "full"),
    ("llama b8 s256", "llama", 256, 4, 32000, 8, 256, False, "full"),
    ("llama b4 s512", "llama", 256, 4, 32000, 4, 512, False, "full"),
    ("llama b8 s256 ckpt", "llama", 256, 4, 32000, 8, 256, True, "full"),
    ("llama b4 s512 ckpt", "llama", 256, 4, 32000, 4, 512, True, "full"),
    ("llama-512 b4 s256", "llama", 512, 6, 8000, 4, 256, False, "full"),
    ("llama b8 s256 lora", "llama", 256, 4, 32000, 8, 256, False, "lora"),
    ("gpt2 b4 s256", "gpt2", 256, 4, 32000, 4, 256, False, "full"),
    ("gpt2 b8 s256 ckpt", "gpt2", 256, 4, 32000, 8, 256, True, "full"),
]


def hf_fields(family: str, hidden: int, layers: int, vocab: int) -> dict:
    if family == "llama":
        return {
            "model_type": "llama",
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "intermediate_size": (int(8 * hidden / 3) + 7) // 8 * 8,
            "vocab_size": vocab,
            "tie_word_embeddings": False,
        }
    return {
        "model_type": "gpt2",
        "n_embd": hidden,
        "n_layer": layers,
        "n_head": 4,
        "n_positions": 1024,
        "vocab_size": vocab,
        "tie_word_embeddings": False,
        "activation_function": "gelu_new",
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    }


def run_config(folder: Path, batch: int, seq: int, ckpt: bool, method: str) -> dict:
    return {
        "method": method,
        "model": {"path": str(folder)},
        "device": "cpu",
        "precision": "fp32",
        "data": {"path": "builtin:tiny_sql_corpus.txt", "seq_len": seq},
        "strategy": {"name": "single", "activation_checkpointing": ckpt},
        "train": {"micro_batch_size": batch, "max_steps": 10},
    }


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(spec: dict) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftdist.config import load_config
    from ftdist.distributed.device import Precision
    from ftdist.distributed.env import DistEnv
    from ftdist.methods import apply_method
    from ftdist.strategies.single import SingleDevice
    from ftdist.training.loss import token_loss_sum
    from ftdist.training.optim import build_optimizer

    torch.manual_seed(0)
    config = load_config(spec["config"])
    cpu = torch.device("cpu")

    def steps(model_config, n: int) -> None:
        model = apply_method(AutoModelForCausalLM.from_config(model_config), config)
        model, optimizer = SingleDevice(config, DistEnv(), cpu, Precision("fp32", None, False)).prepare(
            model, lambda m: build_optimizer(m, config.optim, cpu)
        )
        ids = torch.randint(0, model_config.vocab_size, (config.train.micro_batch_size, config.data.seq_len))
        for _ in range(n):
            token_loss_sum(model, {"input_ids": ids, "labels": ids}, cpu).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    hf = AutoConfig.from_pretrained(spec["folder"])
    warm = AutoConfig.from_pretrained(spec["folder"])
    for key in ("num_hidden_layers", "n_layer"):
        if hasattr(warm, key):
            setattr(warm, key, 1)
    steps(warm, 1)  # thread pools, allocator arenas, kernel caches: not the model's memory
    baseline, peak, done = rss(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            time.sleep(0.001)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    steps(hf, 2)
    done.set()
    sampler.join()
    print(json.dumps({"rise": max(peak[0], rss()) - baseline}))


def main() -> None:
    from ftdist.config import load_config
    from ftdist.planner.candidates import candidate_from_config
    from ftdist.planner.hardware import Hardware, MiB, cpu_device
    from ftdist.planner.recommend import evaluate
    from ftdist.planner.workload import workload_from_config

    print(f"{'case':<22} {'predicted MiB':>13} {'measured MiB':>12} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, family, hidden, layers, vocab, batch, seq, ckpt, method in CASES:
            folder = Path(tmp) / name.replace(" ", "_")
            folder.mkdir()
            (folder / "config.json").write_text(json.dumps(hf_fields(family, hidden, layers, vocab)))
            raw = run_config(folder, batch, seq, ckpt, method)
            config = load_config(raw)
            predicted = evaluate(
                workload_from_config(config), candidate_from_config(config.strategy, 1), Hardware(cpu_device())
            ).estimate.peak
            env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536", "PYTHONPATH": str(Path(__file__).parents[1])}
            spec = json.dumps({"config": raw, "folder": str(folder)})
            out = subprocess.run([sys.executable, __file__, "--child", spec], env=env, capture_output=True, text=True)
            if out.returncode:
                print(f"{name:<22} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            measured = json.loads(out.stdout.strip().splitlines()[-1])["rise"]
            print(f"{name:<22} {predicted / MiB:13.1f} {measured / MiB:12.1f} {predicted / measured:6.3f}")


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(json.loads(sys.argv[2]))
    else:
        main()
