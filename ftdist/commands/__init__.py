"""Subcommands of the `ftdist` CLI, one module each (see ftdist.cli.COMMANDS).

Command modules import only argparse at module level: `ftdist --help` builds every parser, and must not pay
for torch. Each `run` imports what it needs.
"""

from __future__ import annotations

import argparse


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """CONFIG and key=value overrides: the same two arguments on every command that runs a config."""
    parser.add_argument("config", help="a run config YAML, e.g. cluster_configs/tiny_llama_full.yaml")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override config keys, e.g. train.max_steps=200"
    )


def add_set_argument(parser: argparse.ArgumentParser, before: str) -> None:
    """`--set key=value` (repeatable): overrides for commands whose positionals are not a single CONFIG."""
    help_text = f"override a config key before {before} (repeatable)"
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="key=value", help=help_text)
