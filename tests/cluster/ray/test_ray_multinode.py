"""Two Ray nodes on one machine: a head (`ray.cluster_utils.Cluster`, in this process) and a second node that
joins it as on a real machine, `ray start --address HEAD --block` with its own ports, raylet and custom resource
label; 1 CPU each. This module starts and stops only its own processes (never `ray stop`, which stops every Ray
on the machine); its ports are picked free, so a default `ray start --head` elsewhere does not clash.

- SPREAD places one of the 2 workers on each node (the node ids the workers print, launch/ray_worker.py);
- losing the second node (SIGKILL of its raylet, by pid) mid-run: ftdist says the workers no longer fit, Ray
  Train waits, a node joins again, the group restarts from the last registered checkpoint and ends bitwise equal
  to the uninterrupted run;
- losing it for good with --capacity-timeout-s: the job stops with a message that says what to do.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import REPO
from ftdist.distributed.process_group import free_port
from ftdist.errors import FtdistError

pytestmark = pytest.mark.ray

CONFIG = str(REPO / "cluster_configs" / "tiny_llama_full.yaml")
STEPS, EVERY = 24, 4
COMMON = [
    "strategy=ddp",
    f"train.max_steps={STEPS}",
    f"checkpoint.every={EVERY}",
    "checkpoint.keep_last=2",
    "train.eval_every=0",
    "train.log_every=1",
    "tracking.progress=false",
    "tracking.plots=false",
]
SECOND = "ftdist_second_node"  # the custom resource label of the second node
PLACED = re.compile(r"ftdist: Ray Train worker rank (\d) of 2 on node (\w+)")


@pytest.fixture(scope="module")
def cluster():
    """The head in this process (`Cluster`, so its processes are this module's own) and a second node joined to
    it as on a real machine, `ray start --address HEAD --block`, with its own ports and resource label."""
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "OMP_NUM_THREADS", "RAY_AUTH_MODE")}
    os.environ.update(PYTHONPATH=f"{REPO}{os.pathsep}{saved['PYTHONPATH'] or ''}", OMP_NUM_THREADS="1")
    # Ray 2.60 turns token auth on for a cluster whenever ~/.ray/auth_token exists, which any `ray.init()`
    # without an address (`--address local`) writes; this module's nodes and driver agree on "off" instead.
    os.environ["RAY_AUTH_MODE"] = "disabled"  # before ray is imported: its config reads it once
    ray_cluster = pytest.importorskip("ray.cluster_utils")
    # The GCS declares a node dead after ~1.5 s without heartbeats (default ~15 s).
    fast = {"health_check_period_ms": 500, "health_check_timeout_ms": 500, "health_check_failure_threshold": 3}
    head = {"num_cpus": 1, "gcs_server_port": free_port(), "include_dashboard": False, "_system_config": fast}
    two = ray_cluster.Cluster(initialize_head=True, head_node_args=head)
    two.joined = []
    try:
        join(two)
        yield two
    finally:
        for node in two.joined:
            node.terminate()  # `ray start --block` stops its node's processes on SIGTERM
            node.wait(timeout=60)
        two.shutdown()
        for key, value in saved.items():
            os.environ.pop(key) if value is None else os.environ.__setitem__(key, value)


def join(cluster, timeout_s: float = 60) -> str:
    """Start the second node (`ray start --address`, blocking, as a child of this process); its node id."""
    names = ("node-manager", "object-manager", "dashboard-agent-listen", "dashboard-agent-grpc", "runtime-env-agent")
    ports = {name: free_port() for name in (*names, "metrics-export")}
    command = ["ray", "start", "--address", cluster.address, "--block", "--node-ip-address", "127.0.0.1",
               "--num-cpus", "1", "--resources", json.dumps({SECOND: 1}), "--object-store-memory", str(150 * 2**20),
               "--disable-usage-stats", *(f"--{name}-port={port}" for name, port in ports.items())]  # fmt: skip
    cluster.joined.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = [n for n in cluster.global_state.node_table() if n["Alive"] and SECOND in n["Resources"]]
        if found:
            return found[0]["NodeID"]
        time.sleep(0.2)
    raise AssertionError(f"the second node did not join within {timeout_s} s: {' '.join(command)}")


def second_node_id(cluster) -> str:
    return next(n["NodeID"] for n in cluster.global_state.node_table() if n["Alive"] and SECOND in n["Resources"])


def _launch(cluster, out: Path, **profile):
    from launch.ray_train import launch

    flags = {"workers": 2, "placement_strategy": "SPREAD", "health_check_interval_s": 0.2, **profile}
    return launch(CONFIG, [f"output_dir={out}", *COMMON], address=cluster.address, **flags)


class WorkerLogs:
    """The placement lines the workers printed since this object was made (Ray's worker-*.out files)."""

    def __init__(self, cluster) -> None:
        self.folder = Path(cluster.head_node.get_session_dir_path()) / "logs"
        self.seen = {path: path.stat().st_size for path in self.folder.glob("worker-*.out")}

    def placements(self) -> list[tuple[int, str]]:
        found = []
        for path in sorted(self.folder.glob("worker-*.out")):
            found += PLACED.findall(path.read_bytes()[self.seen.get(path, 0) :].decode(errors="replace"))
        return [(int(rank), node) for rank, node in found]


def _weights(run) -> dict[str, torch.Tensor]:
    return load_file(run.final_dir / "model.safetensors")


@pytest.fixture(scope="module")
def spread_run(cluster, tmp_path_factory):
    logs = WorkerLogs(cluster)
    result = _launch(cluster, tmp_path_factory.mktemp("spread") / "run")
    return result, logs.placements()


def test_spread_places_one_worker_on_each_node(cluster, spread_run):
    _, placements = spread_run
    assert sorted(rank for rank, _ in placements) == [0, 1]
    assert {node for _, node in placements} == {cluster.head_node.node_id, second_node_id(cluster)}


def _kill_second_node_after_a_checkpoint(
    cluster, run_dir: Path, rejoin: bool, killed_at: list | None = None, timeout_s: float = 240
) -> None:
    """Once step 8 is sealed (so step 4 was registered with Ray), SIGKILL the second node's raylet by its pid;
    its workers die with it (the time goes into `killed_at`). With `rejoin`, a new second node joins once the
    cluster has seen the node go."""
    import psutil

    latest, deadline = run_dir / "checkpoints" / "latest", time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (latest.exists() and latest.read_text().strip() not in ("", "step-4")):
        time.sleep(0.005)
    gone = second_node_id(cluster)
    raylet = next(p for p in psutil.Process(cluster.joined[-1].pid).children(recursive=True) if p.name() == "raylet")
    os.kill(raylet.pid, signal.SIGKILL)
    if killed_at is not None:
        killed_at.append(time.monotonic())
    while any(n["NodeID"] == gone and n["Alive"] for n in cluster.global_state.node_table()):
        time.sleep(0.2)
    if rejoin:
        time.sleep(2)  # the driver's capacity watch polls every second: let it see the gap
        join(cluster)


def test_lost_node_waits_and_resumes_bitwise_when_a_node_joins(cluster, spread_run, tmp_path, capfd):
    """The wait is bounded (--capacity-timeout-s 120) only so that a node that never rejoins fails this test with
    ftdist's message instead of holding the session; the rejoin comes seconds after the loss."""
    reference, _ = spread_run
    logs, run_dir = WorkerLogs(cluster), tmp_path / "run"
    with ThreadPoolExecutor(1) as helper:  # its result() raises what went wrong in the thread
        killer = helper.submit(_kill_second_node_after_a_checkpoint, cluster, run_dir, True)
        try:
            result = _launch(cluster, run_dir, max_failures=1, capacity_timeout_s=120)
        finally:
            killer.result(timeout=120)
    out = capfd.readouterr().out
    assert "the cluster now has room for 1 of the 2 workers" in out and "gives up after 120 s" in out
    assert "room for all 2 workers again" in out
    assert second_node_id(cluster) in {node for _, node in logs.placements()}  # the group restarted on it
    ours, theirs = _weights(result), _weights(reference)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0, msg=name)


def test_node_gone_for_good_stops_after_the_capacity_timeout_with_what_to_do(cluster, tmp_path):
    run_dir, killed_at = tmp_path / "run", []
    with ThreadPoolExecutor(1) as helper:
        killer = helper.submit(_kill_second_node_after_a_checkpoint, cluster, run_dir, False, killed_at)
        try:
            with pytest.raises(FtdistError, match=r"room for only 1 of the 2 workers for 3 s.*ray start --address"):
                _launch(cluster, run_dir, max_failures=1, capacity_timeout_s=3)
        finally:
            killer.result(timeout=120)
    # Without the timeout Ray Train waits for a node without limit. From the kill: the GCS sees the node go
    # (~1.5 s), the capacity watch (1 s polls) gives up 3 s later, then the job stops; seconds when idle,
    # counted from the kill so that a slow start on a busy machine is not part of it.
    assert killed_at and time.monotonic() - killed_at[0] < 90
