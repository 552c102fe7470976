"""The Ray launcher's fast checks and config mapping, without a cluster."""

from __future__ import annotations

import sys
import time

import pytest

from conftest import run_cli
from ftdist.config import load_config
from ftdist.distributed.env import detect_env
from ftdist.distributed.process_group import free_port
from ftdist.errors import ConfigError, FtdistError
from launch.profiles import RayProfile
from launch.ray_train import launch

CONFIG = "cluster_configs/tiny_llama_full.yaml"


def test_no_cluster_at_address_fails_fast_with_a_message(tmp_path):
    started = time.perf_counter()
    with pytest.raises(FtdistError, match="no Ray cluster answers at 127.0.0.1"):
        launch(CONFIG, [f"output_dir={tmp_path}/run"], address=f"127.0.0.1:{free_port()}")
    assert time.perf_counter() - started < 10


def test_cli_with_no_cluster_at_address_says_so_within_seconds(tmp_path):
    """`ftdist launch ray --address HOST:PORT` with nothing listening: one paragraph, exit 2, no minute-long
    ray.init retry loop."""
    port, started = free_port(), time.perf_counter()
    result = run_cli("launch", "ray", "--address", f"127.0.0.1:{port}", CONFIG, f"output_dir={tmp_path}/run")
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in result.stderr and "ray start --head" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.perf_counter() - started < 20


def test_unwritable_storage_path_is_refused_before_connecting(tmp_path):
    with pytest.raises(FtdistError, match="--storage-path=/proc/ftdist cannot be written"):
        launch(CONFIG, [f"output_dir={tmp_path}/run"], address="127.0.0.1:1", storage_path="/proc/ftdist")


def test_profile_file_then_flags(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("workers: 4\ncpus_per_worker: 2\nresources_per_worker: {special: 1}\n")
    resolved = RayProfile.load(profile, {"workers": 8, "cpus_per_worker": 3, "use_gpu": None})
    assert resolved.workers == 8
    assert resolved.resources() == {"CPU": 3.0, "special": 1.0}
    for shipped in ("cluster_configs/ray/gpu_node_8x.yaml", "cluster_configs/ray/local_cpu.yaml"):
        assert RayProfile.load(shipped, {}).workers > 1  # the shipped profiles load


def test_profile_rejects_unknown_keys_and_a_ray_section_in_the_run_config_says_where_it_went(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("num_worker: 2\n")
    with pytest.raises(FtdistError, match="num_worker.*valid keys: workers, use_gpu"):
        RayProfile.load(profile, {})
    with pytest.raises(ConfigError, match="Ray settings are a launcher profile.*--workers 2"):
        load_config(CONFIG, ["ray.num_workers=2"])


def test_gpu_request_maps_to_ray_resources():
    profile = RayProfile(use_gpu=True, gpus_per_worker=1, memory_per_worker_gb=2)
    assert profile.resources() == {"CPU": 1.0, "GPU": 1.0, "memory": 2 * 2**30}


def test_a_bad_combination_is_refused_before_connecting(tmp_path):
    with pytest.raises(ConfigError, match="strategy: single runs one process, but this job has 2"):
        launch(CONFIG, [f"output_dir={tmp_path}/run"], address="127.0.0.1:1", workers=2)


def test_outside_a_ray_worker_rank_comes_from_the_other_launchers(monkeypatch):
    import ray.train  # noqa: F401  (imported, but this process is no Ray Train worker)

    assert "ray.train" in sys.modules
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    env = detect_env()
    assert (env.launcher, env.rank, env.world_size) == ("torchrun", 1, 2)


def test_sigint_handler_is_put_back_after_the_job():
    """Ray Train's fit installs a SIGINT handler that aborts its controller and never removes it: ftdist puts the
    one from before back (a later Ctrl-C would otherwise call a dead controller and auto-start Ray)."""
    import signal

    from launch.ray_capacity import sigint_handler_restored

    def ours(*_):
        pass

    before = signal.getsignal(signal.SIGINT)
    with sigint_handler_restored():
        signal.signal(signal.SIGINT, ours)  # what Ray Train's fit does on the main thread
    assert signal.getsignal(signal.SIGINT) is before


def test_capacity_message_says_whether_the_driver_waits_or_gives_up():
    from launch.ray_capacity import CapacityWatch

    left = [{"NodeID": "a1b2c3d4e5", "NodeManagerAddress": "10.0.0.7"}]
    waits = CapacityWatch(RayProfile(workers=2), "10.0.0.1:6379")._short_message(1, left)
    assert "room for 1 of the 2 workers" in waits and "a1b2c3d4 (10.0.0.7)" in waits
    assert "waits without limit (set --capacity-timeout-s to give up)" in waits
    assert "ray start --address 10.0.0.1:6379" in waits
    gives_up = CapacityWatch(RayProfile(workers=2, capacity_timeout_s=90), "10.0.0.1:6379")._short_message(1, left)
    assert "gives up after 90 s" in gives_up and "without limit" not in gives_up
