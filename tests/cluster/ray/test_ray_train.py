"""Ray Train end to end on a real local Ray head (127.0.0.1, 2 CPUs), torn down after the session.

Each run is the tiny Llama (cluster_configs/tiny_llama_full.yaml) for a few steps on 2 CPU workers (gloo).
RAY_TRAIN_HEALTH_CHECK_INTERVAL_S is 0.2 s here (--health-check-interval-s 0.2): every checkpoint report
waits for the controller's next poll, and Ray's 2 s default would make these runs mostly waiting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ftdist.errors import FtdistError

pytestmark = pytest.mark.ray

REPO = Path(__file__).resolve().parents[3]
CONFIG = str(REPO / "cluster_configs" / "tiny_llama_full.yaml")
STEPS, EVERY = 8, 2
COMMON = [
    f"train.max_steps={STEPS}",
    f"checkpoint.every={EVERY}",
    "checkpoint.keep_last=2",
    "train.eval_every=0",
    "train.log_every=1",
    "tracking.progress=false",
    "tracking.plots=false",
]
FAST_HEALTH_CHECK = {"health_check_interval_s": 0.2}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_head(tmp_path_factory):
    """A real Ray head on the loopback address with 2 CPUs and a dashboard (for `ray job submit`)."""
    if shutil.which("ray") is None:
        pytest.skip("the `ray` command is not installed")
    port, dashboard = _free_port(), _free_port()
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    start = [
        "ray", "start", "--head", "--node-ip-address", "127.0.0.1", f"--port={port}",
        "--num-cpus", "2", "--num-gpus", "0", "--object-store-memory", str(200 * 2**20),
        "--include-dashboard=true", "--dashboard-host", "127.0.0.1", f"--dashboard-port={dashboard}",
        "--disable-usage-stats",
    ]  # fmt: skip
    subprocess.run(start, check=True, env=env, capture_output=True, timeout=120)
    try:
        yield {"address": f"127.0.0.1:{port}", "dashboard": f"http://127.0.0.1:{dashboard}", "env": env}
    finally:
        subprocess.run(["ray", "stop", "--force"], env=env, capture_output=True, timeout=120)


def _launch(ray_head, out: Path, *extra: str, **profile):
    from launch.ray_train import launch

    overrides = [f"output_dir={out}", *COMMON, *extra]
    return launch(CONFIG, overrides, address=ray_head["address"], **{"workers": 2, **FAST_HEALTH_CHECK, **profile})


def _losses(run_dir: Path) -> dict[int, float]:
    events = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {event["step"]: event["loss"] for event in events if "loss" in event}


def _assert_exportable(result) -> None:
    """The registered checkpoint is a sealed ftdist folder, and final/ is a loadable Hugging Face model."""
    from transformers import AutoModelForCausalLM

    from ftdist.checkpoint.folders import verify

    assert result.checkpoint is not None and verify(result.checkpoint) is None
    assert json.loads((result.checkpoint / "MANIFEST.json").read_text())["step"] == STEPS
    model = AutoModelForCausalLM.from_pretrained(result.final_dir)
    assert sum(p.numel() for p in model.parameters()) > 0
    # `ftdist export` on the checkpoint Ray registered gives the same weights as final/
    import torch
    from safetensors.torch import load_file

    from ftdist.cli import main

    out = result.checkpoint.parent / "exported"
    assert main(["export", str(result.checkpoint), "--out", str(out)]) == 0
    exported, final = load_file(out / "model.safetensors"), load_file(result.final_dir / "model.safetensors")
    assert exported.keys() == final.keys() and all(torch.equal(exported[k], final[k]) for k in final)


@pytest.fixture(scope="module")
def ddp_run(ray_head, tmp_path_factory):
    return _launch(ray_head, tmp_path_factory.mktemp("ddp") / "run", "strategy=ddp")


def test_ddp_two_workers_completes_with_falling_loss(ddp_run):
    losses = _losses(ddp_run.run_dir)
    assert sorted(losses) == list(range(1, STEPS + 1))  # rank 0 alone tracks: one event per step, not two
    assert losses[STEPS] < losses[1] - 0.3
    _assert_exportable(ddp_run)


def test_fsdp2_two_workers_completes_with_falling_loss(ray_head, tmp_path):
    before = signal.getsignal(signal.SIGINT)
    result = _launch(ray_head, tmp_path / "run", "strategy=fsdp")
    assert signal.getsignal(signal.SIGINT) is before  # not Ray Train's, which would abort a finished job
    losses = _losses(result.run_dir)
    assert losses[STEPS] < losses[1] - 0.3
    assert (result.checkpoint / "dcp").is_dir()  # both ranks' shards landed in the one registered folder
    _assert_exportable(result)


def test_deepspeed_zero2_two_workers_completes_with_falling_loss(ray_head, tmp_path):
    """DeepSpeed reuses the gloo group Ray Train created; both ranks write into the one checkpoint folder."""
    result = _launch(ray_head, tmp_path / "run", "strategy=deepspeed", "strategy.zero_stage=2")
    losses = _losses(result.run_dir)
    assert losses[STEPS] < losses[1] - 0.3
    _assert_exportable(result)


def test_killed_worker_restarts_and_matches_uninterrupted_run(ray_head, ddp_run, tmp_path, capfd):
    """SIGKILL one Ray Train worker process from outside, as a real failure would, mid-run; Ray restarts the
    group, which resumes from the last registered checkpoint and ends bitwise equal."""
    run_dir = tmp_path / "run"
    killed: list[int] = []
    watcher = threading.Thread(target=_kill_a_worker_after_first_checkpoint, args=(run_dir, killed), daemon=True)
    watcher.start()
    result = _launch(ray_head, run_dir, "strategy=ddp", max_failures=1)
    watcher.join(timeout=5)
    assert killed, "no worker was killed: the run finished before its first checkpoint was seen"
    # The driver's copy of the workers' output can lag behind the end of fit(); Ray's own worker log files
    # (default temp dir) hold the line for certain.
    logs = [capfd.readouterr().out, *(p.read_text(errors="replace") for p in _ray_worker_logs())]
    # The group must have restarted (its workers were killed and the run still finished). It resumes from the
    # last checkpoint the controller had registered, or from the start when the kill beat the first
    # registration: either way the curve and the weights must equal the uninterrupted run's.
    resumed = re.search(r"resuming from \S+ \(step \d+\)", "\n".join(logs))
    print(resumed.group(0) if resumed else "restarted from the start", "after killing pids", killed)
    assert _losses(result.run_dir) == _losses(ddp_run.run_dir)  # same loss curve, step by step, bitwise
    ours, reference = (
        load_file(result.final_dir / "model.safetensors"),
        load_file(ddp_run.final_dir / "model.safetensors"),
    )
    assert ours.keys() == reference.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], reference[name], rtol=0, atol=0, msg=name)


def _ray_worker_logs() -> list[Path]:
    return sorted(Path("/tmp/ray/session_latest/logs").glob("worker-*.out"))


def _kill_a_worker_after_first_checkpoint(run_dir: Path, killed: list[int], timeout_s: float = 240) -> None:
    """Once the second checkpoint is sealed (so the first was registered with Ray: a report follows each seal),
    SIGKILL every process Ray named as a Train worker (`ray::RayTrainWorker`): both ranks die at once, as when
    their node goes down (Ray may keep idle processes of that name, so killing one might miss the ranks)."""
    import psutil

    latest, deadline = run_dir / "checkpoints" / "latest", time.monotonic() + timeout_s
    while time.monotonic() < deadline and not (latest.exists() and latest.read_text().strip() not in ("", "step-2")):
        time.sleep(0.005)
    for process in psutil.process_iter(["pid", "cmdline"]):
        if "RayTrainWorker" in " ".join(process.info["cmdline"] or []):
            os.kill(process.info["pid"], signal.SIGKILL)
            killed.append(process.info["pid"])


def test_ray_job_submit(ray_head, tmp_path):
    out = tmp_path / "run"
    command = [
        "ray", "job", "submit", "--address", ray_head["dashboard"], "--working-dir", str(REPO),
        "--runtime-env-json", json.dumps({"excludes": [".git", "runs", "*.egg-info"]}), "--",
        sys.executable, "-m", "launch.ray_train", "cluster_configs/tiny_llama_full.yaml", "--workers", "2",
        "--health-check-interval-s", "0.2",
        "strategy=ddp", f"output_dir={out}", *COMMON,
    ]  # fmt: skip
    done = subprocess.run(command, env=ray_head["env"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "succeeded" in done.stdout
    losses = _losses(out)
    assert losses[STEPS] < losses[1] - 0.3
    assert (out / "final" / "model.safetensors").exists()


def test_more_workers_than_the_cluster_holds_is_refused(ray_head, tmp_path):
    from launch.ray_train import launch

    with pytest.raises(FtdistError, match=r"1 CPU each.*2 CPU.*room for 2"):
        launch(CONFIG, [f"output_dir={tmp_path}/run", *COMMON, "strategy=ddp"], address=ray_head["address"], workers=3)
