"""`ftdist launch local --nproc N CONFIG [key=value ...]`: torchrun on this machine (or one node of several).

A convenience over `torchrun --nproc_per_node N -m ftdist train CONFIG ...`: it validates the config and runs
`ftdist.preflight` with the world it is about to start (so `strategy: single` on 2 processes or a DeepSpeed
JSON batch-size conflict stops here, not in N workers), picks a free port for single-node runs, passes your
OMP_NUM_THREADS (if any) on to the workers past torchrun, which sets 1 (`pick_cpu_threads` gives each
worker the machine's CPUs over N otherwise), and returns the workers' exit status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ftdist.errors import FtdistError
from launch.base import Launcher
from launch.profiles import LocalProfile


class LocalLauncher(Launcher):
    """torchrun on this machine (or on one node of several: run it on each with --nnodes/--node-rank)."""

    name = "local"
    help = "torchrun on this machine"
    profile_model = LocalProfile

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="print the torchrun command and exit")

    def world(self, config, profile: LocalProfile):
        from ftdist.preflight import World, device_of

        return World(self.nproc(profile) * profile.nnodes, device_of(config, _gpus_here()), profile.nnodes)

    def nproc(self, profile: LocalProfile) -> int:
        return profile.nproc or max(_gpus_here(), 1)

    def submit(self, config, profile: LocalProfile, args: argparse.Namespace) -> int:
        from ftdist.distributed.device import launcher_thread_env
        from ftdist.distributed.process_group import free_port
        from ftdist.distributed.rendezvous import check_port_free

        if profile.nnodes > 1 and profile.master_port is None:
            raise FtdistError("multi-node runs need the same --master-port on every node, e.g. --master-port 29500")
        if profile.master_port is not None and profile.node_rank == 0 and not args.dry_run:
            how = "pass another --master-port (profile key master_port), the same on every node"
            check_port_free(profile.master_port, how)  # node 0 hosts the store; the others only connect to it
        command = torchrun_command(profile, self.nproc(profile), profile.master_port or free_port(), args)
        if args.dry_run:
            print(" ".join(command))
            return 0
        return subprocess.call(command, env={**os.environ, **launcher_thread_env()})


def torchrun_command(profile: LocalProfile, nproc: int, port: int, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--nnodes={profile.nnodes}",
        f"--node_rank={profile.node_rank}",
        f"--master_addr={profile.master_addr}",
        f"--master_port={port}",
        "-m",
        "ftdist",
        "train",
        args.config,
        *args.overrides,
    ]


def _gpus_here() -> int:
    import torch

    return torch.cuda.device_count()
