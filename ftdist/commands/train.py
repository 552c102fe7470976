"""`ftdist train CONFIG [key=value ...]`: train in this process (or in each process torchrun/srun started)."""

from __future__ import annotations

import argparse

from ftdist.commands import add_config_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", help="train a run config", description=__doc__)
    add_config_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.preemption import PREEMPTED_EXIT_CODE
    from ftdist.trainer import train

    result = train(args.config, args.overrides)
    return PREEMPTED_EXIT_CODE if result.preempted else 0
