"""`ftdist eval RUN_OR_MODEL --task TASK [options]`: score a run's final model, a checkpoint or any HF folder.

Writes `<out>.json` (metrics and the settings that produced them) and `<out>.jsonl` (one row per example).
Launched with several processes (torchrun, `ftdist launch local --nproc N`, srun), the items are split across
ranks and gathered on rank 0, with the same result as one process.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("eval", help="evaluate a model on a task", description=__doc__)
    parser.add_argument("model", help="a run folder (runs/NAME), a checkpoint folder, or a Hugging Face model folder")
    parser.add_argument("--task", required=True, help="perplexity | qa | sql | questions | score")
    parser.add_argument("--data", dest="path", help="the task's data file (builtin:NAME for shipped files)")
    parser.add_argument("--out", help="result path without suffix (default: RUN/eval/TASK, or eval/MODEL-TASK)")
    parser.add_argument("--label", help="the name of this evaluation in the results (default: the task)")
    parser.add_argument("--prefix", help="few-shot text put before every prompt")
    parser.add_argument("--prefix-file", help="read the few-shot prefix from a file (builtin:bible_qa_prefix.txt)")
    parser.add_argument("--template", help="prompt template, e.g. 'Q: {question}\\nA:'")
    parser.add_argument("--scoring", help="qa: lenient (default) | exact | token_f1 | substring")
    parser.add_argument("--stop", action="append", help="cut responses at this string (repeatable; default newline)")
    parser.add_argument("--question-field")
    parser.add_argument("--answer-field")
    parser.add_argument("--max-new-tokens", type=int)
    parser.add_argument("--temperature", type=float, help="0 (default) is greedy")
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--limit", type=int, help="evaluate the first N items only")
    parser.add_argument("--seq-len", type=int, help="perplexity window in tokens")
    parser.add_argument("--schemas", help="sql: a Spider tables.json")
    parser.add_argument("--reward-model", help="score: a local AutoModelForSequenceClassification folder")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


OPTION_KEYS = (
    "task", "label", "path", "prefix", "prefix_file", "template", "scoring", "stop", "question_field",
    "answer_field", "max_new_tokens", "temperature", "top_p", "seed", "batch_size", "limit", "seq_len", "schemas",
    "reward_model",
)  # fmt: skip


def task_config(args: argparse.Namespace):
    """The command's options as an EvalTaskConfig (unset options keep the config's defaults)."""
    from pydantic import ValidationError

    from ftdist.config.eval import EvalTaskConfig
    from ftdist.errors import FtdistError

    values = {key: getattr(args, key) for key in OPTION_KEYS if getattr(args, key, None) is not None}
    try:
        return EvalTaskConfig(**values)
    except ValidationError as error:
        problems = "; ".join(f"--{'.'.join(map(str, e['loc'])).replace('_', '-')}: {e['msg']}" for e in error.errors())
        raise FtdistError(problems.replace("Value error, ", "")) from None


def default_out(model: str, label: str) -> Path:
    from ftdist.eval.api import run_dir_of
    from ftdist.run_folder import RunFolder

    run = run_dir_of(model)
    return RunFolder(run).eval / label if run else Path("eval") / f"{Path(model).resolve().name}-{label}"


def run(args: argparse.Namespace) -> int:
    from ftdist.distributed.device import pick_device, use_cpu_threads_for
    from ftdist.distributed.env import detect_env
    from ftdist.distributed.process_group import init_distributed, shutdown_distributed
    from ftdist.eval.api import evaluate, format_metrics, load_model_for_eval, run_dir_of
    from ftdist.eval.results import write_results

    config = task_config(args)
    env = detect_env()
    device = pick_device(args.device, env.local_rank)
    init_distributed(env, device)
    try:
        model, tokenizer = load_model_for_eval(args.model, device)
        use_cpu_threads_for(model, device)
        results = evaluate(
            model, tokenizer, [config], device, run_dir_of(args.model), env.rank, env.world_size, not args.no_progress
        )
        if env.is_main:
            path = write_results(
                Path(args.out) if args.out else default_out(args.model, config.name), args.model, results
            )
            print(format_metrics(results))
            print(f"results: {path} (rows: {path.with_suffix('.jsonl')})")
    finally:
        shutdown_distributed()
    return 0
