"""`ftdist generate RUN_OR_MODEL --prompt TEXT`: sample text from a run's final model or any model folder."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("generate", help="sample text from a trained model", description=__doc__)
    parser.add_argument("model", help="a run folder (runs/NAME) or a Hugging Face model folder")
    parser.add_argument("--prompt", required=True, help='text to continue, e.g. "SELECT COUNT"')
    parser.add_argument("--max-new-tokens", type=int, default=80)
    parser.add_argument("--temperature", type=float, default=0.7, help="0 means greedy")
    parser.add_argument("--top-p", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "mps", "cpu"])
    return parser


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ftdist.config.eval import GenerationConfig
    from ftdist.distributed.device import pick_device, use_cpu_threads_for
    from ftdist.errors import FtdistError
    from ftdist.generate import generate, load_for_generation

    try:
        settings = GenerationConfig(
            max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p, seed=args.seed
        )
    except ValidationError as error:
        raise FtdistError("; ".join(e["msg"] for e in error.errors())) from None
    device = pick_device(args.device)
    model, tokenizer = load_for_generation(args.model, device)
    use_cpu_threads_for(model, device)
    print(generate(model, tokenizer, args.prompt, settings, device))
    return 0
