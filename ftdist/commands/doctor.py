"""`ftdist doctor CONFIG [--nproc N]`: check this machine or allocation for a run config (ftdist/doctor.py).

Started alone it runs the checks in N processes on this machine (torchrun, as `ftdist launch local`); under
torchrun, srun or a Ray job's processes it is one rank of that job, as `ftdist train` would be. Exit status
1 when any check fails; each failure prints its fix.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from ftdist.commands import add_config_arguments


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("doctor", help="check this machine or allocation for a run config",
                                   description=__doc__)  # fmt: skip
    add_config_arguments(parser)
    parser.add_argument("--nproc", type=int, default=1, help="processes to start here when not already under a "
                        "launcher (torchrun/srun/Ray); default 1")  # fmt: skip
    return parser


def run(args: argparse.Namespace) -> int:
    from ftdist.config import load_config
    from ftdist.distributed.env import detect_env
    from ftdist.distributed.process_group import free_port, shutdown_distributed
    from ftdist.doctor import print_table, run_checks

    config = load_config(args.config, args.overrides)  # a bad file stops here, with its usual message
    env = detect_env()
    if args.nproc > 1 and not env.distributed:
        return _spawn(args, free_port())
    try:
        rows = run_checks(config, env)
    finally:
        shutdown_distributed()
    passed = all(row.ok for row in rows)
    if env.is_main:
        print_table(rows, args.config, env)
        if STATUS_FILE in os.environ:
            Path(os.environ[STATUS_FILE]).write_text("ok" if passed else "failed")
    if STATUS_FILE in os.environ:
        return 0  # the spawning doctor reports the status; a failing rank would make torchrun print a traceback
    return 0 if passed else 1


STATUS_FILE = "FTDIST_DOCTOR_STATUS_FILE"


def _spawn(args: argparse.Namespace, port: int) -> int:
    """The checks in `--nproc` processes on this machine (torchrun); rank 0 leaves the verdict in a file."""
    with tempfile.TemporaryDirectory(prefix="ftdist-doctor-") as folder:
        status = Path(folder) / "status"
        env = {"OMP_NUM_THREADS": "1", **os.environ, STATUS_FILE: str(status)}
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={args.nproc}",
                   f"--master_port={port}", "-m", "ftdist", "doctor", args.config, *args.overrides]  # fmt: skip
        code = subprocess.call(command, env=env)
        return 0 if code == 0 and status.is_file() and status.read_text() == "ok" else 1
