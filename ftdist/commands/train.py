"""`ftdist train CONFIG [key=value ...]`: train in this process (or in each process torchrun/srun started)."""

from __future__ import annotations

import argparse

from ftdist.preemption import PREEMPTED_EXIT_CODE


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", help="train a run config", description=__doc__)
    parser.add_argument("config", help="a run config YAML, e.g. cluster_configs/tiny_sql_gpt.yaml")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override config keys, e.g. train.max_steps=200"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.trainer import train

    result = train(args.config, args.overrides)
    return PREEMPTED_EXIT_CODE if result.preempted else 0
