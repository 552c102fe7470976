"""`ftdist launch LAUNCHER ...`: start a run's processes with a launcher (`local` = torchrun on this machine).

Every launcher ends in the same worker, `ftdist train CONFIG` / `ftdist.train(config, overrides)`, and shares
one contract (launch/base.py: a typed profile plus `submit`). Launchers are found through the
`ftdist.launchers` entry-point group (pyproject.toml), so the library never imports the `launch` package and
a site can add its own launcher from another package.
"""

from __future__ import annotations

import argparse
from importlib.metadata import entry_points

from ftdist.errors import FtdistError

GROUP = "ftdist.launchers"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("launch", help="start a run's processes (torchrun, Slurm, Ray)", description=__doc__)
    backends = parser.add_subparsers(dest="launcher", required=True, metavar="LAUNCHER")
    found = sorted(entry_points(group=GROUP), key=lambda entry: ORDER.get(entry.name, len(ORDER)))
    if not found:
        raise FtdistError(f"no launchers are registered ({GROUP} entry points): reinstall ftdist (pip install -e .)")
    for entry in found:
        entry.load()().add_parser(backends)
    return parser


ORDER = {"local": 0, "slurm": 1, "ray": 2}  # --help order


def run(args: argparse.Namespace) -> int:  # replaced per launcher by set_defaults(handler=...)
    raise AssertionError("argparse dispatches to the launcher's run()")
