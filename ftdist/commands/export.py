"""`ftdist export RUN [--out DIR]`: write a run's model as Hugging Face safetensors (full model or adapter)."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("export", help="export a run's model as an HF folder", description=__doc__)
    parser.add_argument("run", help="a run folder (runs/NAME: its final/ or latest checkpoint) or a checkpoint folder")
    parser.add_argument("--out", help="where to write the HF folder (default: RUN/export)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.export import export

    print(f"exported to {export(args.run, args.out)}")
    return 0
