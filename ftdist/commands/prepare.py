"""`ftdist prepare CONFIG [key=value ...]`: tokenize and pack the data once, cache it, print the data card.

Training reads the same cache (keyed by a fingerprint of the data files, the tokenizer and the `data:`
settings), so a later `ftdist train` with the same config starts without tokenizing. Runs on one process,
with `data.workers` tokenizer processes (default: the CPUs it may use); under torchrun, srun or Ray every rank
builds its share of the units (`data.unit_mb`) into one folder on the shared data.cache_dir, and rank 0 seals
it. With `data.sources`, each source is prepared and printed, then the mixture's shares of tokens.
"""

from __future__ import annotations

import argparse
import json

from ftdist.commands import add_config_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "prepare",
        help="tokenize, pack and cache the data; print a data card",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the card as JSON")
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.config import load_config
    from ftdist.data.card import render_card
    from ftdist.data.prepare import prepare
    from ftdist.distributed.env import detect_env
    from ftdist.errors import FtdistError

    config = load_config(args.config, args.overrides)
    env = detect_env()  # several ranks (torchrun, srun, Ray) share the units out; rank 0 alone prints
    if config.data.sources:
        return _run_sources(config, args.json, env)
    if config.data.recipe == "stream":
        raise FtdistError(
            "data.recipe: stream samples random windows from the raw text at run time; there is nothing to "
            "prepare. Use a recipe such as text or instruction"
        )
    prepared = prepare(config, env=env)
    if not env.is_main:
        return 0
    if args.json:
        print(json.dumps({**prepared.card, "folder": str(prepared.folder), "cache_hit": prepared.cache_hit}, indent=1))
    else:
        print(render_card(prepared.card, prepared.folder, prepared.cache_hit))
    return 0


def _run_sources(config, as_json: bool, env) -> int:
    """`data.sources`: each source's card, then the mixture's shares."""
    from ftdist.data.card import render_card
    from ftdist.data.mixture_prepare import mixture_card, prepare_sources, render_mixture

    prepared = prepare_sources(config, env=env)
    if not env.is_main:
        return 0
    mixture = mixture_card(config, prepared)
    if as_json:
        cards = [{**p.card, "folder": str(p.folder), "cache_hit": p.cache_hit} for p in prepared]
        print(json.dumps({"sources": cards, "mixture": mixture}, indent=1))
        return 0
    for p in prepared:
        print(render_card(p.card, p.folder, p.cache_hit))
    print(render_mixture(mixture))
    return 0
