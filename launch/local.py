"""`ftdist launch local --nproc N CONFIG [key=value ...]`: torchrun on this machine (or one node of several).

A convenience over `torchrun --nproc_per_node N -m ftdist train CONFIG ...`: it validates the config first
(with the world size it is about to start, so a DeepSpeed JSON batch-size conflict stops here, not in N
workers), picks a free port for single-node runs, sets OMP_NUM_THREADS=1 unless you set it (N processes on
one CPU otherwise oversubscribe the cores), and returns the workers' exit status.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from ftdist.errors import FtdistError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("local", help="torchrun on this machine", description=__doc__)
    parser.add_argument("--nproc", type=int, default=None, help="processes on this node (default: GPUs here, or 1)")
    parser.add_argument("--nnodes", type=int, default=1, help="nodes in the job (multi-node: run this on each)")
    parser.add_argument("--node-rank", type=int, default=0, help="this node's index, 0..nnodes-1")
    parser.add_argument("--master-addr", default="127.0.0.1", help="address of node 0 (multi-node)")
    parser.add_argument("--master-port", type=int, default=None, help="port on node 0 (default: a free port)")
    parser.add_argument("--dry-run", action="store_true", help="print the torchrun command and exit")
    parser.add_argument("config", help="a run config YAML, e.g. cluster_configs/tiny_llama_full.yaml")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. strategy=ddp")
    return parser


def torchrun_command(args: argparse.Namespace, nproc: int, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        f"--nnodes={args.nnodes}",
        f"--node_rank={args.node_rank}",
        f"--master_addr={args.master_addr}",
        f"--master_port={port}",
        "-m",
        "ftdist",
        "train",
        args.config,
        *args.overrides,
    ]


def run(args: argparse.Namespace) -> int:
    import torch

    from ftdist.config import load_config
    from ftdist.env import free_port

    nproc = args.nproc or max(torch.cuda.device_count(), 1)
    if nproc < 1 or args.nnodes < 1:
        raise FtdistError(f"--nproc={nproc} and --nnodes={args.nnodes} must be at least 1")
    world = nproc * args.nnodes
    os.environ["WORLD_SIZE"] = str(world)  # lets the config check the DeepSpeed batch size for this world
    config = load_config(args.config, args.overrides)
    if config.strategy.name == "single" and world > 1:
        raise FtdistError(
            f"strategy: single runs one process but --nproc x --nnodes = {world}; add strategy=ddp (or fsdp, "
            "deepspeed) to the command, or use --nproc 1"
        )
    if args.nnodes > 1 and args.master_port is None:
        raise FtdistError("multi-node runs need the same --master-port on every node, e.g. --master-port 29500")
    command = torchrun_command(args, nproc, args.master_port or free_port())
    if args.dry_run:
        print(" ".join(command))
        return 0
    env = dict(os.environ)
    env.pop("WORLD_SIZE")
    env.setdefault("OMP_NUM_THREADS", "1")
    return subprocess.call(command, env=env)
