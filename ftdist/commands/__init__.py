"""Subcommands of the `ftdist` CLI, one module each (see ftdist.cli.COMMANDS).

Command modules import only argparse at module level: `ftdist --help` builds every parser, and must not pay
for torch. Each `run` imports what it needs.

One grammar for every command that takes a run config: `CONFIG [key=value ...]`, in any order with the flags
(`ftdist launch slurm --nodes 2 CONFIG train.max_steps=9 --dry-run`), and `--set key=value` where it was
accepted before. `CommandParser` sorts the words after argparse has read the flags.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

OVERRIDE = re.compile(r"[A-Za-z_][\w.\-]*=")  # key.sub=value (a word that is not a flag and names a key)


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose `config`/`overrides` positionals may come in any order and between the flags.

    argparse reads positionals in runs, so `CONFIG --nodes 2 k=v` leaves `k=v` unrecognized; here every such
    word joins the positionals, which are then sorted: a word of the form `key=value` (that is
    not an existing file) is an override, any other is a config. `--set key=value` overrides come first."""

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        if not any(action.dest == "config" for action in self._actions) or not hasattr(namespace, "overrides"):
            return namespace, extras
        many = isinstance(namespace.config, list)
        words = [*(namespace.config if many else [namespace.config]), *namespace.overrides]
        words += [word for word in extras if not word.startswith("-")]  # positionals argparse read past
        extras = [word for word in extras if word.startswith("-")]
        configs = [word for word in words if not _is_override(word)]
        if not configs or (len(configs) > 1 and not many):
            found = ", ".join(configs) or "none"
            self.error(
                f"expected {'one or more' if many else 'one'} CONFIG file and key=value overrides; configs: {found}"
            )
        namespace.config = configs if many else configs[0]
        namespace.overrides = [*getattr(namespace, "set_overrides", []), *(w for w in words if _is_override(w))]
        return namespace, extras


def _is_override(word: str) -> bool:
    return bool(OVERRIDE.match(word)) and not Path(word).is_file()


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG and key=value overrides: the same two arguments on every command that runs a config."""
    parser.add_argument("config", help="a run config YAML, e.g. cluster_configs/tiny_llama_full.yaml")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="override config keys, e.g. train.max_steps=200 (anywhere on the line, before or after the flags)",
    )


def add_set_argument(parser: argparse.ArgumentParser, before: str) -> None:
    """`--set key=value` (repeatable): the older spelling of a key=value override, still accepted."""
    help_text = f"override a config key before {before} (repeatable; the same as a bare key=value)"
    parser.add_argument("--set", dest="set_overrides", action="append", default=[], metavar="key=value", help=help_text)
