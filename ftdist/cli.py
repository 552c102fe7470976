"""The `ftdist` command. Each subcommand lives in `ftdist/commands/<name>.py` with `add_parser` and `run`.

A user error (`FtdistError`) prints one paragraph and exits 2 with no traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ftdist.errors import FtdistError

# Subcommand modules, in --help order. A new subcommand is a new module and one entry here.
# export: also `merge`
COMMANDS = ["train", "validate", "plan", "prepare", "generate", "eval", "compare", "export", "launch", "doctor"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ftdist", description="Fine-tune and pre-train language models: laptop, one GPU, torchrun, Slurm, Ray."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"ftdist.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except FtdistError as error:
        print(f"ftdist {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ftdist {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
