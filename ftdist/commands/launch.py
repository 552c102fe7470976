"""`ftdist launch BACKEND ...`: start a run's processes with a launcher (`local` = torchrun on this machine).

Every launcher ends in the same worker, `ftdist train CONFIG` / `ftdist.train(config, overrides)`; this
command only picks the backend. A new launcher is a module in `launch/` and one entry in LAUNCHERS.
"""

from __future__ import annotations

import argparse
import importlib

# launcher name -> module with add_parser(subparsers) and run(args)
LAUNCHERS: dict[str, str] = {
    "local": "launch.local",
    "slurm": "launch.slurm",
    "ray": "launch.ray_train",
}


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("launch", help="start a run's processes (torchrun, Slurm, Ray)", description=__doc__)
    backends = parser.add_subparsers(dest="launcher", required=True, metavar="LAUNCHER")
    for module_name in LAUNCHERS.values():
        module = importlib.import_module(module_name)
        module.add_parser(backends).set_defaults(handler=module.run)
    return parser


def run(args: argparse.Namespace) -> int:  # replaced per launcher by set_defaults(handler=...)
    raise AssertionError("argparse dispatches to the launcher's run()")
