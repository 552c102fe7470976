"""Where bf16 autocast starts to pay on this CPU: one training step of a 2-layer Llama per width, fp32 against
bf16 autocast (fp32 weights, grads and AdamW state), interleaved A B A B so machine load hits both alike.

    python benchmarks/cpu_bf16_threshold.py [--widths 64 128 256 384 576 768] [--repeats 3]

`ftdist.distributed.device.BF16_MIN_WIDTH` (the hidden size from which `precision: auto` picks bf16 on a CPU with AMX or
AVX512-BF16) comes from this table.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ftdist.distributed.device import cpu_has_fast_bf16


def step_seconds(width: int, bf16: bool, batch: int, seq: int, steps: int) -> float:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=8192,
        hidden_size=width,
        intermediate_size=width * 8 // 3,
        num_hidden_layers=2,
        num_attention_heads=max(1, width // 64),
        num_key_value_heads=max(1, width // 64),
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    ids = torch.randint(0, config.vocab_size, (batch, seq))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step()  # warm-up: allocator, kernels, optimizer state
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128, 256, 384, 576, 768])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, fast bf16: {cpu_has_fast_bf16()}")
    print("width  fp32 s/step  bf16 s/step  bf16 speed-up")
    for width in args.widths:
        fp32, bf16 = [], []
        for _ in range(args.repeats):
            fp32.append(step_seconds(width, False, args.batch, args.seq, args.steps))
            bf16.append(step_seconds(width, True, args.batch, args.seq, args.steps))
        a, b = statistics.median(fp32), statistics.median(bf16)
        print(f"{width:5d}  {a:11.4f}  {b:11.4f}  {a / b:12.2f}x")


if __name__ == "__main__":
    main()
