"""`ftdist validate CONFIG ... [--set key=value] [--world-size N --device cuda]`: check configs without loading
data or models. The file alone is checked in well under a second (no torch import); with --world-size or
--device, the checks that depend on the job (`ftdist.preflight`: strategy and method against the world size,
the device and the installed packages) run too, as every launcher runs them before it submits."""

from __future__ import annotations

import argparse

from ftdist.commands import add_set_argument


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("validate", help="check a run config without running it", description=__doc__)
    parser.add_argument("config", nargs="+", help="one or more run config YAML files")
    add_set_argument(parser, "validating")
    parser.add_argument("--print", dest="show", action="store_true", help="print the resolved config")
    parser.add_argument("--world-size", type=int, default=None, help="also run preflight for this many processes")
    parser.add_argument("--device", choices=["cuda", "mps", "cpu"], default=None, help="the device of that world")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.config import dump_config, load_config

    for path in args.config:
        config = load_config(path, args.overrides)
        if args.world_size is not None or args.device is not None:
            from ftdist.preflight import World, preflight

            preflight(config, World(args.world_size or 1, args.device or "cpu"))
        print(
            f"{path}: ok ({config.method.name}, {config.strategy.name}, {config.train.max_steps} steps, "
            f"output {config.run_dir})"
        )
        if args.show:
            print(dump_config(config))
    return 0
