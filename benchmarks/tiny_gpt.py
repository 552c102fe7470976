"""Tokens/s of ftdist's training step against a plain PyTorch loop in the tiny SQL GPT paper's style.

The reference is written the way the paper's notebook is: one nn.Module per attention head (separate
key/query/value Linears and a masked softmax per head), `torch.randint` batches, default torch AdamW,
`loss.backward()` and `optimizer.step()`. Both models use the same shapes (4 layers, 4 heads, n_embd 64,
context 32, batch 16, vocabulary of the SQL corpus) and pre-norm blocks with both residuals.

    python benchmarks/tiny_gpt.py [--steps 300] [--repeats 3]

The reference runs on torch's default thread count, as the paper's notebook does; ftdist on its own choice
(one intra-op thread for a model this small on a CPU, `pick_cpu_threads`). The reference is also
timed on ftdist's thread count, so the share of the gain that comes from the thread choice is visible.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from ftdist.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "cluster_configs" / "tiny_sql_gpt.yaml"
BATCH, CONTEXT, EMBED, HEADS, LAYERS = 16, 32, 64, 4, 4


class Head(nn.Module):
    def __init__(self, head_size: int) -> None:
        super().__init__()
        self.key = nn.Linear(EMBED, head_size, bias=False)
        self.query = nn.Linear(EMBED, head_size, bias=False)
        self.value = nn.Linear(EMBED, head_size, bias=False)
        self.register_buffer("tril", torch.tril(torch.ones(CONTEXT, CONTEXT)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, T, _ = x.shape
        k, q = self.key(x), self.query(x)  # (B, T, hs)
        weights = q @ k.transpose(-2, -1) * k.shape[-1] ** -0.5  # (B, T, T)
        weights = F.softmax(weights.masked_fill(self.tril[:T, :T] == 0, float("-inf")), dim=-1)
        return weights @ self.value(x)  # (B, T, hs)


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList(Head(EMBED // HEADS) for _ in range(HEADS))
        self.proj = nn.Linear(EMBED, EMBED)
        self.ffwd = nn.Sequential(nn.Linear(EMBED, 4 * EMBED), nn.ReLU(), nn.Linear(4 * EMBED, EMBED))
        self.ln1, self.ln2 = nn.LayerNorm(EMBED), nn.LayerNorm(EMBED)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln1(x)
        x = x + self.proj(torch.cat([head(h) for head in self.heads], dim=-1))
        return x + self.ffwd(self.ln2(x))


class PaperGPT(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, EMBED)
        self.position_embedding = nn.Embedding(CONTEXT, EMBED)
        self.blocks = nn.Sequential(*[Block() for _ in range(LAYERS)])
        self.ln_f = nn.LayerNorm(EMBED)
        self.lm_head = nn.Linear(EMBED, vocab)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _, T = idx.shape
        x = self.token_embedding(idx) + self.position_embedding(torch.arange(T))  # (B, T, C)
        logits = self.lm_head(self.ln_f(self.blocks(x)))  # (B, T, V)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def reference_tokens_per_s(data: torch.Tensor, vocab: int, steps: int, threads: int) -> float:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = PaperGPT(vocab)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def get_batch():
        ix = torch.randint(len(data) - CONTEXT, (BATCH,))
        x = torch.stack([data[i : i + CONTEXT] for i in ix])
        y = torch.stack([data[i + 1 : i + CONTEXT + 1] for i in ix])
        return x, y

    def step():
        x, y = get_batch()
        loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _time(step, steps)


def ftdist_tokens_per_s(trainer: Trainer, steps: int, threads: int) -> float:
    torch.set_num_threads(threads)
    return _time(trainer.train_step, steps)


def _time(step, steps: int) -> float:
    for _ in range(20):  # warm-up: allocator, kernels, optimizer state
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * BATCH * CONTEXT / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    trainer = Trainer(
        CONFIG,
        [
            "output_dir=/tmp/ftdist-bench-tiny-gpt",
            "tracking.progress=false",
            "tracking.tensorboard=false",
            "checkpoint.resume=auto",
        ],
    )
    default_threads = torch.get_num_threads()  # what the paper's notebook runs with
    trainer.setup()
    ftdist_threads = torch.get_num_threads()  # ftdist's choice for this model (1 for small models on a CPU)
    data = trainer.data.splits["train"]
    vocab = len(trainer.tokenizer)
    print(
        f"torch {torch.__version__}, device {trainer.device}, threads: reference {default_threads} (torch's "
        f"default), ftdist {ftdist_threads}; batch {BATCH} x context {CONTEXT}, vocab {vocab}; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    reference, same_threads, ours = [], [], []
    for repeat in range(args.repeats):  # interleaved, so machine load hits every side alike
        reference.append(reference_tokens_per_s(data, vocab, args.steps, default_threads))
        same_threads.append(reference_tokens_per_s(data, vocab, args.steps, ftdist_threads))
        ours.append(ftdist_tokens_per_s(trainer, args.steps, ftdist_threads))
        print(
            f"  repeat {repeat + 1}: reference {reference[-1]:,.0f} tok/s, reference on ftdist's threads "
            f"{same_threads[-1]:,.0f} tok/s, ftdist {ours[-1]:,.0f} tok/s"
        )
    trainer.close()
    ref, same, fd = statistics.median(reference), statistics.median(same_threads), statistics.median(ours)
    print(f"reference (paper style, torch defaults): {ref:,.0f} tokens/s")
    print(f"reference on ftdist's thread count:      {same:,.0f} tokens/s")
    print(f"ftdist train_step:                       {fd:,.0f} tokens/s")
    print(f"ratio ftdist / reference: {fd / ref:.2f}x (target >= 2.0x); same threads: {fd / same:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
