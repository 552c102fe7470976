"""Rank/world mapping from launcher variables, device order and precision choice.

Device availability is monkeypatched in the device tests: CUDA and MPS cannot exist on the CI machine,
so this is the one mock the core allows (the code paths that pick them are what is under test).
"""

from __future__ import annotations

import os

import pytest
import torch

from ftdist.distributed.device import pick_device, pick_precision
from ftdist.distributed.env import detect_env
from ftdist.errors import FtdistError


def test_plain_process_is_rank_zero_of_one():
    env = detect_env({})
    assert (env.rank, env.world_size, env.local_rank, env.launcher) == (0, 1, 0, "single")


def test_torchrun_variables():
    env = detect_env({"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "GROUP_RANK": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.node_rank, env.launcher) == (3, 8, 1, 1, "torchrun")


def test_slurm_variables_without_torchrun():
    env = detect_env({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NODEID": "1"})
    assert (env.rank, env.world_size, env.local_rank, env.node_rank, env.launcher) == (5, 8, 1, 1, "slurm")


def test_torchrun_wins_inside_a_slurm_job():
    env = detect_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "3"})
    assert (env.rank, env.world_size, env.launcher) == (3, 4, "torchrun")


def test_single_task_slurm_job_is_a_plain_run():
    assert detect_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}).launcher == "single"


def _fake_hardware(monkeypatch, cuda: bool, mps: bool, bf16: bool = True):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2 if cuda else 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    ("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"), (False, False, "cpu")]
)
def test_auto_device_order_is_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    _fake_hardware(monkeypatch, cuda, mps)
    assert pick_device("auto").type == expected


def test_local_rank_picks_the_gpu(monkeypatch):
    _fake_hardware(monkeypatch, cuda=True, mps=False)
    assert pick_device("auto", local_rank=1) == torch.device("cuda", 1)


def test_explicit_device_override(monkeypatch):
    _fake_hardware(monkeypatch, cuda=False, mps=True)
    assert pick_device("cpu").type == "cpu"


def test_missing_device_is_an_error_not_a_fallback(monkeypatch):
    _fake_hardware(monkeypatch, cuda=False, mps=False)
    with pytest.raises(FtdistError, match="no mps.*available here: cpu"):
        pick_device("mps")


def test_precision_follows_hardware(monkeypatch):
    _fake_hardware(monkeypatch, cuda=True, mps=False, bf16=True)
    assert pick_precision("auto", torch.device("cuda", 0)).name == "bf16"
    _fake_hardware(monkeypatch, cuda=True, mps=False, bf16=False)
    fp16 = pick_precision("auto", torch.device("cuda", 0))
    assert (fp16.name, fp16.autocast_dtype, fp16.grad_scaler) == ("fp16", torch.float16, True)
    assert pick_precision("auto", torch.device("mps")).name == "fp32"
    assert pick_precision("auto", torch.device("cpu")).name == "fp32"
    assert pick_precision("bf16", torch.device("cpu")).autocast_dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("requested", "device", "fix"),
    [
        ("fp16", "cpu", "use precision: bf16 or fp32"),
        ("bf16", "mps", "use fp32 or auto"),
    ],
)
def test_unsafe_precision_is_rejected(requested, device, fix):
    with pytest.raises(FtdistError, match=fix):
        pick_precision(requested, torch.device(device))


def test_threads_follow_the_allocation_the_same_way_under_every_launcher():
    """`pick_cpu_threads`, the one rule: the user's OMP_NUM_THREADS, else 1 for a small model, else the allocation
    over the processes sharing it; whichever launcher set the environment (torchrun and Ray set OMP_NUM_THREADS
    themselves, so ftdist's launchers pass the user's value on as FTDIST_OMP_NUM_THREADS)."""
    from ftdist.distributed.device import launcher_thread_env, pick_cpu_threads

    cpu, wide = torch.device("cpu"), 512
    here = len(os.sched_getaffinity(0))
    unset = launcher_thread_env({})  # what `ftdist launch local` / _launch.sh add when the user set nothing
    allocations = {
        "ftdist train": ({}, here),
        "launch local --nproc 2": ({**unset, "OMP_NUM_THREADS": "1", "LOCAL_WORLD_SIZE": "2"}, max(1, here // 2)),
        "sbatch srun task, -c 4": ({**unset, "SLURM_CPUS_PER_TASK": "4"}, 4),
        "sbatch torchrun x2, -c 8": ({**unset, "SLURM_CPUS_PER_TASK": "8", "LOCAL_WORLD_SIZE": "2"}, 4),
        "submitit task, -c 3": ({"SLURM_CPUS_PER_TASK": "3"}, 3),
        "ray, 2 cpus per worker": ({**launcher_thread_env({}, 2.0), "LOCAL_WORLD_SIZE": "2"}, 2),
    }
    for name, (environ, threads) in allocations.items():
        assert pick_cpu_threads(cpu, wide, environ) == threads, name
        assert pick_cpu_threads(cpu, 64, environ) == 1, name  # narrower than 256: one thread
        user = {**environ, **launcher_thread_env({"OMP_NUM_THREADS": "3"}), "OMP_NUM_THREADS": "1"}
        assert pick_cpu_threads(cpu, 64, user) == 3, name  # the user's value survives torchrun's/Ray's 1
    assert pick_cpu_threads(cpu, wide, {"SLURM_CPUS_PER_TASK": "1", "LOCAL_WORLD_SIZE": "4"}) == 1
    assert pick_cpu_threads(torch.device("meta"), wide, {}) is None  # not a CPU: torch's own choice
    with pytest.raises(FtdistError, match="OMP_NUM_THREADS='two' is not a whole number"):
        pick_cpu_threads(cpu, wide, {"OMP_NUM_THREADS": "two"})
