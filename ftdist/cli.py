"""The `ftdist` command. Each subcommand lives in `ftdist/commands/<name>.py` with `add_parser` and `run`.

A user error (`FtdistError`) prints one paragraph and exits 2 with no traceback; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ftdist.commands import CommandParser
from ftdist.errors import FtdistError, FtdistWarning

# Subcommand modules, in --help order. A new subcommand is a new module and one entry here.
# export: also `merge`
COMMANDS = ["train", "validate", "plan", "prepare", "generate", "eval", "compare", "export", "launch", "doctor"]


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(  # sub-commands inherit the class: CONFIG and key=value in any order
        prog="ftdist", description="Fine-tune and pre-train language models: laptop, one GPU, torchrun, Slurm, Ray."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"ftdist.commands.{name}")
        sub = module.add_parser(subparsers)
        sub.set_defaults(handler=module.run)
        add_verbose_flag(sub)
    return parser


VERBOSE_HELP = "also show third-party progress bars and notices (transformers, bitsandbytes, DeepSpeed)"


def add_verbose_flag(parser: argparse.ArgumentParser) -> None:
    """`--verbose` after the command too; SUPPRESS keeps `ftdist --verbose train ...` from being reset."""
    if not any(action.dest == "verbose" for action in parser._actions):
        parser.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP)


def _notes_as_one_line() -> None:
    """ftdist's own warnings (`FtdistWarning`) print as `ftdist: note: ...`, not as the library frame that
    happened to raise them (a pydantic validator, for a config note); other warnings keep Python's format."""
    default = warnings.formatwarning

    def formatwarning(message, category, filename, lineno, line=None) -> str:
        if issubclass(category, FtdistWarning):
            return f"ftdist: note: {message}\n"
        return default(message, category, filename, lineno, line)

    warnings.formatwarning = formatwarning


def main(argv: list[str] | None = None) -> int:
    if argv is None and _command_of(sys.argv[1:]) == "train":  # a process of its own: its allocator may change
        from ftdist.allocator import reexec_with_allocator

        reexec_with_allocator()
    args = build_parser().parse_args(argv)
    _notes_as_one_line()
    if not getattr(args, "verbose", False):
        from ftdist.quiet import quiet_third_party

        quiet_third_party()
    try:
        return int(args.handler(args) or 0)
    except FtdistError as error:
        print(f"ftdist {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ftdist {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The `ftdist` console command and `python -m ftdist`: `main()`, then the process ends without Python's
    interpreter teardown (seconds of garbage collection after the work is done: `ftdist.quick_exit`). An
    exception, `--help` and argparse's errors leave through Python's usual exit."""
    from ftdist.quick_exit import exit_without_teardown

    exit_without_teardown(main())


def _command_of(arguments: list[str]) -> str | None:
    return next((argument for argument in arguments if not argument.startswith("-")), None)


if __name__ == "__main__":
    entry()
