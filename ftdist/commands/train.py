"""`ftdist train CONFIG [key=value ...]`: train in this process (or in each process torchrun/srun started).

Before anything loads, the files the config names must exist here (`ftdist.config.files`): a missing data file
or model folder is one sentence naming the key, its line and the fix, not a Hub error minutes later."""

from __future__ import annotations

import argparse

from ftdist.commands import add_config_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", help="train a run config", description=__doc__)
    add_config_arguments(parser)
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.config import load_config
    from ftdist.config.files import file_problems
    from ftdist.errors import ConfigError
    from ftdist.trainer import train
    from ftdist.training.preemption import PREEMPTED_EXIT_CODE

    config = load_config(args.config, args.overrides)
    problems = file_problems(config)
    if problems:
        raise ConfigError(" ".join(problems))
    result = train(config)
    return PREEMPTED_EXIT_CODE if result.preempted else 0
