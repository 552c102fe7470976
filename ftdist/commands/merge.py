"""`ftdist merge RUN [--out DIR]`: fold a LoRA/QLoRA run's adapter into its base and save a plain HF model."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("merge", help="merge a LoRA adapter into its base model", description=__doc__)
    parser.add_argument("run", help="a run folder (runs/NAME), an adapter folder, or a checkpoint folder")
    parser.add_argument("--out", help="where to write the merged model (default: RUN/merged)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.export import merge

    print(f"merged model written to {merge(args.run, args.out)}")
    return 0
