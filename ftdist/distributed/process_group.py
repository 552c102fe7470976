"""Joining and leaving the process group (nccl on GPU, gloo on CPU), with the rendezvous each launcher implies."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import torch
import torch.distributed as dist

from ftdist.distributed.env import DistEnv
from ftdist.distributed.rendezvous import slurm_rendezvous


def init_distributed(env: DistEnv, device: torch.device, timeout_s: int = 1800, always: bool = False) -> None:
    """Join the process group (nccl on GPU, gloo on CPU) unless this is a single process or already joined.

    `always`: a single process gets a 1-rank group too (FSDP and DeepSpeed need one, e.g. to resume a sharded
    checkpoint on one process)."""
    if dist.is_initialized() or not (env.distributed or always):
        return
    if not env.distributed:
        os.environ.setdefault("MASTER_PORT", str(free_port()))
    if env.launcher == "slurm" and not ("MASTER_ADDR" in os.environ and "MASTER_PORT" in os.environ):
        # one srun task per process, no torchrun: derive the rendezvous from the job
        for name, value in slurm_rendezvous(os.environ).items():
            os.environ.setdefault(name, value)
        for name, value in (("RANK", env.rank), ("WORLD_SIZE", env.world_size), ("LOCAL_RANK", env.local_rank)):
            os.environ.setdefault(name, str(value))  # DeepSpeed and accelerate read these
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29500")
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=env.rank, world_size=env.world_size, timeout=timedelta(seconds=timeout_s))


def shutdown_distributed() -> None:
    """barrier + destroy: without it DeepSpeed on gloo aborts at exit in about 3 runs of 10.

    The pause releases the GIL so that gloo's worker threads can free the works they finished: freeing one
    drops its tensors' Python objects, which needs the GIL. Without it a rank could hang for good at exit: the
    main thread, holding the GIL, destroyed the DDP reducer, whose ~ProcessGroupGloo joined a worker thread
    that was waiting for the GIL in ~AsyncBarrierWork (py-spy --native, one CI run of qlora x ddp)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        time.sleep(0.05)
        dist.destroy_process_group()


def free_port() -> int:
    """A free TCP port on this host, for single-node rendezvous."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
