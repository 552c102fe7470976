"""One GPU, one call, one JSON object: ftdist's GPU paths measured on a 1B-shaped Llama (built from config,
random weights, so nothing is downloaded), in under 8 minutes on one H100/H200.

    python benchmarks/gpu_suite.py [--steps 20] [--seq 1024] [--batch 4] > gpu_suite.json

Sections (each runs in its own process, so every peak is that job's alone, and one failure is recorded as
`{"error": ...}` without stopping the rest):
- `qlora_ftdist` / `qlora_hf`: QLoRA (NF4, double quantization, bf16 compute, r 64 on every projection,
  activation checkpointing) with paged_adamw_8bit; ftdist against HF Trainer + peft on the same job:
  tokens/s after warm-up and `torch.cuda.max_memory_allocated`.
- `fsdp_full_bf16`: full fine-tuning in bf16 under FSDP2 on one GPU (a process group of one): tokens/s and MFU,
  with FLOPs per token = 6 N + 12 L d T (the attention scores and values, forward and backward) against the
  GPU's dense bf16 peak.
- `zero3_cpu_adam`: one step of ZeRO-3 with the optimizer offloaded to DeepSpeed's CPU Adam (the 13B configs'
  path): step time and peak GPU memory.
- `fsdp_save_sync` / `fsdp_save_async`: the FSDP2 job with a checkpoint every 2 steps, synchronous against
  asynchronous (`checkpoint.async_save`): `checkpoint_stall_s`, how long each save held the loop.
- `loss_plain_4k` / `loss_chunked_4k`: full fine-tuning at 4 x `--seq` tokens with the whole logits against the
  chunked loss (`train.chunked_loss`): `torch.cuda.max_memory_allocated` beside the planner's prediction.
- each section's `predicted_peak_bytes`: `ftdist.planner.predict_peak_bytes(config, world_size, hardware)`
  beside the measured peak, or null where the planner is not importable.

Without CUDA it prints `{"skipped": ...}` and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHAPE = {  # TinyLlama-1.1B's shape
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_hidden_layers": 22,
    "num_attention_heads": 32,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
}
PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
BF16_PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "H800": 989.0, "A100": 312.0, "A10G": 70.0, "L40S": 362.0}
SECTION_TIMEOUT_S = {
    "qlora_ftdist": 120,
    "qlora_hf": 120,
    "fsdp_full_bf16": 120,
    "zero3_cpu_adam": 150,
    "fsdp_save_sync": 60,
    "fsdp_save_async": 60,
    "loss_plain_4k": 45,
    "loss_chunked_4k": 45,
}


# --- the shared model folder ---------------------------------------------------------------------------------
def build_base(folder: Path) -> None:
    """A random 1B-shaped Llama in bf16 safetensors with a char tokenizer over the shipped SQL corpus."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from ftdist.data.sources import resolve_data_path
    from ftdist.models.char_tokenizer import build_char_tokenizer

    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(LlamaConfig(**SHAPE)).to(torch.bfloat16)
    model.save_pretrained(folder, safe_serialization=True)
    build_char_tokenizer(resolve_data_path("builtin:tiny_sql_corpus.txt").read_text()).save_pretrained(folder)


def run_config(section: str, base: Path, out: Path, args: argparse.Namespace) -> dict:
    steps = {"zero3_cpu_adam": 1, "fsdp_save_sync": 6, "fsdp_save_async": 6}.get(section, args.steps)
    steps = 3 if section.startswith("loss_") else steps
    config = {
        "name": f"gpu-suite-{section}",
        "output_dir": str(out),
        "seed": 0,
        "precision": "bf16",
        "model": {"path": str(base)},
        "data": {"recipe": "stream", "path": "builtin:tiny_sql_corpus.txt", "seq_len": args.seq},
        "schedule": "constant",
        "train": {"max_steps": steps, "micro_batch_size": args.batch, "eval_every": 0, "log_every": 1},
        "checkpoint": {"every": 0},
        "tracking": {"progress": False, "tensorboard": False},
    }
    if section.startswith("qlora"):
        config["method"] = {
            "name": "qlora",
            "lora": {"r": 64, "alpha": 16, "dropout": 0.0, "target_modules": PROJECTIONS},
            "quantization": {"quant_type": "nf4", "double_quant": True, "compute_dtype": "bf16"},
        }
        config["optim"] = {"name": "paged_adamw_8bit", "lr": 2e-4, "on_unsupported": "error"}
        config["strategy"] = {"name": "single", "activation_checkpointing": True}
    elif section == "fsdp_full_bf16" or section.startswith("fsdp_save"):
        config["method"] = "full"
        config["optim"] = {"name": "adamw", "lr": 1e-5}
        config["strategy"] = {"name": "fsdp"}
        if section.startswith("fsdp_save"):  # a save every 2 steps: how long each holds the loop
            config["checkpoint"] = {"every": 2, "keep_last": 1, "async_save": section.endswith("async")}
    elif section.startswith("loss_"):  # the logits of 4 x seq tokens, whole or in chunks: the peak either way
        config["method"] = "full"
        config["optim"] = {"name": "adamw", "lr": 1e-5}
        config["strategy"] = {"name": "single"}
        config["data"]["seq_len"] = 4 * args.seq
        config["train"]["micro_batch_size"] = 1
        config["train"]["chunked_loss"] = section == "loss_chunked_4k"
    else:
        config["method"] = "full"
        config["optim"] = {"name": "adamw", "lr": 1e-5}
        config["strategy"] = {"name": "deepspeed", "zero_stage": 3, "offload_optimizer": "cpu"}
    return config


# --- one section, in its own process -------------------------------------------------------------------------
def section_main(section: str, base: Path, out: Path, args: argparse.Namespace) -> dict:
    import torch

    config = run_config(section, base, out, args)
    result: dict = {"predicted_peak_bytes": predicted_peak(config)}
    if section in ("fsdp_full_bf16", "zero3_cpu_adam") or section.startswith("fsdp_save"):
        one_process_group()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    if section == "qlora_hf":
        result.update(hf_qlora(base, args))
    else:
        import ftdist
        from ftdist.training.tracking import read_metrics

        ftdist.train(config)
        events = [e for e in read_metrics(out) if "tokens_per_s" in e]
        steady = [e["tokens_per_s"] for e in events[args.warmup :]] or [events[-1]["tokens_per_s"]]
        result["tokens_per_s"] = sorted(steady)[len(steady) // 2]
        result["losses"] = [round(e["loss"], 4) for e in events]
        last = read_metrics(out)[-1]
        if "checkpoint_stall_s" in last:
            result["checkpoint_stall_s"] = round(last["checkpoint_stall_s"], 3)
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["max_memory_allocated_bytes"] = torch.cuda.max_memory_allocated()
    if isinstance(result["predicted_peak_bytes"], int):
        result["predicted_over_measured"] = round(
            result["predicted_peak_bytes"] / result["max_memory_allocated_bytes"], 3
        )
    if section == "fsdp_full_bf16":
        result.update(mfu(result["tokens_per_s"], args.seq))
    if section == "zero3_cpu_adam":
        result["step_seconds"] = round(args.seq * args.batch / result.pop("tokens_per_s"), 2)
    return result


def one_process_group() -> None:
    """FSDP2 and DeepSpeed need a process group; one of size 1 runs them on this GPU alone."""
    import torch.distributed as dist

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "LOCAL_RANK": "0"}.items():
        os.environ[name] = value
    os.environ["WORLD_SIZE"] = "1"
    dist.init_process_group("nccl", rank=0, world_size=1)


def predicted_peak(config: dict) -> int | dict | None:
    """The planner's estimate, where ftdist has one (another part of the project; absent is not an error)."""
    try:
        from ftdist.config import load_config
        from ftdist.planner import predict_peak_bytes
    except ImportError:
        return None
    import torch

    props = torch.cuda.get_device_properties(0)
    try:
        from ftdist.planner import build_hardware

        # The nearest preset's peak FLOP/s and link speed, with this GPU's own memory (e.g. an H200's 141 GB).
        preset = "h100-80" if props.major >= 9 else "a100-80"
        hardware = build_hardware(gpu=preset, gpu_mem=f"{props.total_memory}B", gpus=1, nodes=1, cpu_mem=None)
        return int(predict_peak_bytes(load_config(config), 1, hardware))
    except Exception as error:  # the planner's own failure is a finding, not a crash of the suite
        return {"error": f"{type(error).__name__}: {error}"}


def hf_qlora(base: Path, args: argparse.Namespace) -> dict:
    """HF Trainer + peft on ftdist's QLoRA job: same model, quantization, adapters, optimizer, shapes."""
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, Trainer, TrainerCallback, TrainingArguments

    quant = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(
        base, quantization_config=quant, dtype=torch.float32, device_map={"": 0}
    )
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True)
    model = get_peft_model(model, LoraConfig(r=64, lora_alpha=16, lora_dropout=0.0, target_modules=PROJECTIONS))
    generator = torch.Generator().manual_seed(0)
    vocab = 100  # the char tokenizer's range; the shapes are what matter for speed and memory
    rows = [
        {"input_ids": ids, "labels": ids}
        for ids in torch.randint(0, vocab, (args.steps * args.batch, args.seq + 1), generator=generator)
    ]
    times: list[float] = []

    class StepTimes(TrainerCallback):
        def on_step_begin(self, a, state, control, **kwargs):
            torch.cuda.synchronize()
            times.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kwargs):
            torch.cuda.synchronize()
            times[-1] = time.perf_counter() - times[-1]

    training = TrainingArguments(
        output_dir=tempfile.mkdtemp(prefix="gpu-suite-hf-"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        learning_rate=2e-4,
        lr_scheduler_type="constant",
        optim="paged_adamw_8bit",
        bf16=True,
        gradient_checkpointing=True,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        max_grad_norm=0.0,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
    )
    Trainer(model=model, args=training, train_dataset=rows, callbacks=[StepTimes()]).train()
    steady = sorted(args.seq * args.batch / t for t in times[args.warmup :])
    return {"tokens_per_s": steady[len(steady) // 2]}


def mfu(tokens_per_s: float, seq: int) -> dict:
    import torch

    n = parameter_count()
    flops_per_token = 6 * n + 12 * SHAPE["num_hidden_layers"] * SHAPE["hidden_size"] * seq
    name = torch.cuda.get_device_name(0)
    peak = next((tflops for key, tflops in BF16_PEAK_TFLOPS.items() if key in name), None)
    return {
        "parameters": n,
        "flops_per_token": flops_per_token,
        "gpu": name,
        "bf16_peak_tflops": peak,
        "mfu": round(tokens_per_s * flops_per_token / (peak * 1e12), 4) if peak else None,
    }


def parameter_count() -> int:
    h, i, layers, v = SHAPE["hidden_size"], SHAPE["intermediate_size"], SHAPE["num_hidden_layers"], SHAPE["vocab_size"]
    kv = h * SHAPE["num_key_value_heads"] // SHAPE["num_attention_heads"]
    per_layer = 2 * h * h + 2 * h * kv + 3 * h * i + 2 * h  # q, o; k, v; gate, up, down; two norms
    return layers * per_layer + 2 * v * h + h  # untied embedding and head, final norm


# --- the driver ----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seq", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--sections", nargs="+", default=list(SECTION_TIMEOUT_S))
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.section:  # a child: one section, its result as JSON on the last line of stdout
        work = Path(args.work)
        print(json.dumps(section_main(args.section, work / "base", work / args.section, args)))
        return

    import torch

    if not torch.cuda.is_available():
        print(json.dumps({"skipped": "no CUDA device: benchmarks/gpu_suite.py measures GPU paths only"}))
        return
    started = time.perf_counter()
    report: dict = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "steps": args.steps}
    report["shape"] = {**SHAPE, "parameters": parameter_count(), "seq_len": args.seq, "micro_batch": args.batch}
    with tempfile.TemporaryDirectory(prefix="ftdist-gpu-suite-") as name:
        work = Path(name)
        build_base(work / "base")
        torch.cuda.empty_cache()
        for section in args.sections:
            report[section] = run_section(section, work, args)
    if "tokens_per_s" in report.get("qlora_ftdist", {}) and "tokens_per_s" in report.get("qlora_hf", {}):
        report["qlora_ftdist_over_hf"] = round(
            report["qlora_ftdist"]["tokens_per_s"] / report["qlora_hf"]["tokens_per_s"], 3
        )
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


def run_section(section: str, work: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--section", section, "--work", str(work)]
    command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--seq", str(args.seq)]
    command += ["--batch", str(args.batch)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=SECTION_TIMEOUT_S[section], check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {SECTION_TIMEOUT_S[section]} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        return {"error": (done.stderr or done.stdout)[-1500:]}
    return json.loads(lines[-1])


if __name__ == "__main__":
    main()
