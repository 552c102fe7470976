"""`ftdist validate CONFIG ... [key=value ...] [--world-size N --device cuda --gpu t4]`: check configs without
loading data or models, in well under a second (no torch import unless a job is described).

Always: the schema, and the files the config names (data, model and tokenizer folders, prefix and eval files:
they must exist here and be readable; a name that is not a local path must be a Hub id `namespace/name`).
`--schema-only` skips the files (a config written for another machine). With --world-size, --device or --gpu,
the checks that depend on the job (`ftdist.preflight`: strategy and method against the world size; optimizer,
precision and quantization against the device and GPU kind) run too, as every launcher runs them before it
submits."""

from __future__ import annotations

import argparse

from ftdist.commands import add_set_argument


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("validate", help="check a run config without running it", description=__doc__)
    parser.add_argument("config", nargs="+", metavar="CONFIG", help="one or more run config YAML files")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys in each of them")
    add_set_argument(parser, "validating")
    parser.add_argument("--print", dest="show", action="store_true", help="print the resolved config")
    parser.add_argument("--world-size", type=int, default=None, help="also run preflight for this many processes")
    parser.add_argument("--device", choices=["cuda", "mps", "cpu"], default=None, help="the device of that world")
    parser.add_argument(
        "--gpu", default=None, help="the GPU kind of that world (a `ftdist plan --gpu` preset: t4, ...)"
    )
    parser.add_argument("--schema-only", action="store_true", help="check the file alone, not the files it names")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.config import dump_config, load_config
    from ftdist.errors import ConfigError

    for path in args.config:
        config = load_config(path, args.overrides)
        if args.world_size is not None or args.device is not None or args.gpu is not None:
            from ftdist.preflight import World, preflight

            world = World(args.world_size or 1, args.device or ("cuda" if args.gpu else "cpu"), gpu=args.gpu)
            preflight(config, world, files=not args.schema_only)
        elif not args.schema_only:
            from ftdist.config.files import file_problems

            problems = file_problems(config)
            if problems:
                raise ConfigError(" ".join(problems))  # each names the file and line it comes from
        print(
            f"{path}: ok ({config.method.name}, {config.strategy.name}, {config.train.max_steps} steps, "
            f"output {config.run_dir})"
        )
        if args.show:
            print(dump_config(config))
    return 0
