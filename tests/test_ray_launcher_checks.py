"""The Ray launcher's fast checks and config mapping, without a cluster."""

from __future__ import annotations

import sys
import time

import pytest

from ftdist.config import load_config
from ftdist.env import detect_env, free_port
from ftdist.errors import ConfigError, FtdistError
from launch.ray_train import launch, profile_overrides, resolve_config

CONFIG = "cluster_configs/tiny_llama_full.yaml"


def test_no_cluster_at_address_fails_fast_with_a_message(tmp_path):
    started = time.perf_counter()
    with pytest.raises(FtdistError, match="no Ray cluster answers at 127.0.0.1"):
        launch(CONFIG, [f"output_dir={tmp_path}/run"], address=f"127.0.0.1:{free_port()}")
    assert time.perf_counter() - started < 10


def test_unwritable_storage_path_is_refused_before_connecting(tmp_path):
    with pytest.raises(FtdistError, match="ray.storage_path=/proc/ftdist cannot be written"):
        launch(CONFIG, [f"output_dir={tmp_path}/run", "ray.storage_path=/proc/ftdist"], address="127.0.0.1:1")


def test_profile_then_overrides_then_workers(tmp_path):
    profile = tmp_path / "p.yaml"
    profile.write_text("ray:\n  num_workers: 4\n  cpus_per_worker: 2\n  resources_per_worker: {special: 1}\n")
    config = resolve_config(CONFIG, ["ray.cpus_per_worker=3"], str(profile), workers=8)
    assert config.ray.num_workers == 8
    assert config.ray.resources() == {"CPU": 3.0, "special": 1.0}
    assert profile_overrides("cluster_configs/ray/gpu_node_8x.yaml")  # the shipped profiles load


def test_ray_section_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="Did you mean ray.num_workers"):
        load_config(CONFIG, ["ray.num_worker=2"])


def test_gpu_request_maps_to_ray_resources():
    config = load_config(CONFIG, ["ray.use_gpu=true", "ray.gpus_per_worker=1", "ray.memory_per_worker_gb=2"])
    assert config.ray.resources() == {"CPU": 1.0, "GPU": 1.0, "memory": 2 * 2**30}


def test_outside_a_ray_worker_rank_comes_from_the_other_launchers(monkeypatch):
    import ray.train  # noqa: F401  (imported, but this process is no Ray Train worker)

    assert "ray.train" in sys.modules
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    env = detect_env()
    assert (env.launcher, env.rank, env.world_size) == ("torchrun", 1, 2)
