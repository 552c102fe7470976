"""`ftdist validate CONFIG [key=value ...]`: check a config without loading data or models."""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("validate", help="check a run config without running it", description=__doc__)
    parser.add_argument("config", nargs="+", help="one or more run config YAML files")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="key=value",
        help="override a key before validating (repeatable)",
    )
    parser.add_argument("--print", dest="show", action="store_true", help="print the resolved config")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.config import dump_config, load_config

    for path in args.config:
        config = load_config(path, args.overrides)
        print(
            f"{path}: ok ({config.method.name}, {config.strategy.name}, {config.train.max_steps} steps, "
            f"output {config.run_dir})"
        )
        if args.show:
            print(dump_config(config))
    return 0
