"""Launchers: each one starts processes that all end in `ftdist.train(config, overrides)`.

`local` wraps torchrun on this machine. Each launcher module has `add_parser(subparsers)` and `run(args)` and
is listed in `ftdist/commands/launch.py`.
"""
