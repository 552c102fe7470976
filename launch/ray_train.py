"""`ftdist launch ray CONFIG`: run a RunConfig as a Ray Train job (driver side).

The driver resolves the run config (file < `key=value`) and the Ray profile (`--profile` file < flags such as
`--workers`; see launch/base.py), runs preflight for that many workers, checks before anything waits that the
cluster answers, can hold the workers and that storage can be written, then runs a
`ray.train.torch.TorchTrainer` whose per-worker loop is `launch.ray_worker.worker_loop` -> `ftdist.train`.
Ray Train restarts a failed worker group up to `ray.max_failures` times; each restart resumes from the last
checkpoint registered with Ray. Also runnable as `python -m launch.ray_train` (e.g. as a `ray job submit`
entrypoint).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ftdist.errors import FtdistError
from ftdist.run_folder import RunFolder
from launch.base import Launcher
from launch.profiles import RayProfile
from launch.ray_capacity import check_resources, fit_watched

if TYPE_CHECKING:
    from ftdist.config import RunConfig

HEALTH_CHECK_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"
_HEALTH_CHECK_FROM_USER = os.environ.get(HEALTH_CHECK_ENV)  # a value set by the user wins over ray.health_check_...
CONNECT_TIMEOUT_S = 5.0


@dataclass
class RayLaunchResult:
    """Where a finished Ray job left its outputs."""

    checkpoint: Path | None  # the last checkpoint registered with Ray (an ftdist checkpoint folder)
    run_dir: Path  # ftdist's run folder: metrics.jsonl, checkpoints/, final/
    final_dir: Path | None  # the exported Hugging Face model
    metrics: dict[str, Any]


# --- checks that fail fast ------------------------------------------------------------------------------------
def connect(address: str | None, runtime_env: dict | None = None) -> str:
    """`ray.init` the cluster at `address` (`auto`, `host:port`, `ray://host:port`, or `local` for a private one).

    `runtime_env` (env_vars, working_dir, pip ...) applies to every worker of this job."""
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    if address not in ("auto", "local"):
        _probe(address)
    import ray

    try:
        # "local" always starts a new instance; None would join a cluster already running on this machine
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
    except (ConnectionError, TimeoutError) as error:
        raise FtdistError(
            f"no Ray cluster found at --address {address} ({str(error).splitlines()[0]}); start one with "
            "`ray start --head`, pass --address HOST:PORT or ray://HOST:10001, or --address local for a private one"
        ) from None
    return address


def _probe(address: str) -> None:
    """A TCP connect with a short timeout: ray.init on a dead address otherwise retries for a minute or more."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise FtdistError(f"--address {address} is not auto, local, HOST:PORT or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as error:
        raise FtdistError(
            f"no Ray cluster answers at {address} (TCP connect failed within {CONNECT_TIMEOUT_S:.0f} s: "
            f"{error.strerror or error}); check the address and that `ray start --head` runs there"
        ) from None


def check_writable(folder: str, what: str) -> None:
    """Create `folder` and write a probe file; URIs (s3://, gs://) are left to Ray."""
    if "://" in folder:
        return
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".ftdist-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as error:
        raise FtdistError(
            f"{what}={folder} cannot be written ({error.strerror or error}); choose a folder every Ray node "
            "can write (a shared file system for several nodes) or an s3:// / gs:// URI"
        ) from None


# --- the job --------------------------------------------------------------------------------------------------
def storage_path(config: RunConfig, profile: RayProfile) -> str:
    return profile.storage_path or str(Path(config.run_dir) / "ray")


def build_trainer(config: RunConfig, profile: RayProfile):
    """A TorchTrainer that runs `config` on `profile.workers` workers with ftdist's worker loop."""
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from launch.ray_worker import worker_loop

    return TorchTrainer(
        worker_loop,
        train_loop_config={"config": config.model_dump(mode="json")},
        torch_config=TorchConfig(backend="nccl" if profile.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=profile.workers,
            use_gpu=profile.use_gpu,
            resources_per_worker=profile.resources(),
            placement_strategy=profile.placement_strategy,
        ),
        run_config=RayRunConfig(
            name=config.name,
            storage_path=storage_path(config, profile),
            failure_config=FailureConfig(max_failures=profile.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoint.keep_last),
        ),
    )


class RayLauncher(Launcher):
    """Run on a Ray cluster (Ray Train): the same worker loop, restarted from the last checkpoint on failure."""

    name = "ray"
    help = "run on a Ray cluster (Ray Train)"
    profile_model = RayProfile

    def add_options(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--address",
            default=None,
            help="auto (a cluster started on this node; the default, or $RAY_ADDRESS), HOST:PORT, "
            "ray://HOST:10001, or local (start a private Ray instance for this run)",
        )
        parser.add_argument(
            "--runtime-env-json",
            default=None,
            help='Ray runtime env for the workers, e.g. \'{"env_vars": {"HF_HOME": "/data/hf"}}\'',
        )

    def world(self, config, profile: RayProfile):
        from ftdist.preflight import World, device_of

        return World(profile.workers, device_of(config, int(profile.use_gpu)))

    def submit(self, config: RunConfig, profile: RayProfile, args: argparse.Namespace) -> int:
        runtime_env = json.loads(args.runtime_env_json) if args.runtime_env_json else None
        result = run_on_ray(config, profile, args.address, runtime_env)
        step = result.metrics.get("step")  # none when the run saved no checkpoint (checkpoint.every: 0)
        saved = f"done at step {step}; checkpoint {result.checkpoint}" if step is not None else "done (no checkpoint)"
        print(f"ftdist launch ray: {saved}; final model {result.final_dir}; run folder {result.run_dir}")
        return 0


def launch(
    config: str | Path | dict,
    overrides: list[str] | tuple = (),
    address: str | None = None,
    profile: str | Path | None = None,
    runtime_env: dict | None = None,
    **flags: Any,
) -> RayLaunchResult:
    """The Python API of `ftdist launch ray`: `flags` are profile fields (workers=2, max_failures=3 ...)."""
    resolved, ray_profile = RayLauncher().prepare(config, overrides, profile, flags)
    return run_on_ray(resolved, ray_profile, address, runtime_env)


def run_on_ray(
    resolved: RunConfig, profile: RayProfile, address: str | None = None, runtime_env: dict | None = None
) -> RayLaunchResult:
    """Check, run on the cluster at `address`, and return where the outputs are."""
    client = (address or os.environ.get("RAY_ADDRESS") or "").startswith("ray://")
    if not client and not Path(resolved.run_dir).is_absolute():
        # Workers do not share the driver's working directory; pin the run folder to an absolute path.
        resolved.output_dir = str(Path(resolved.run_dir).resolve())
    if not client:
        check_writable(resolved.run_dir, "output_dir")
        check_writable(storage_path(resolved, profile), "--storage-path")
    # The controller reads this when the job starts and passes it on to the workers.
    os.environ[HEALTH_CHECK_ENV] = _HEALTH_CHECK_FROM_USER or str(profile.health_check_interval_s)
    connect(address, with_thread_env(runtime_env, profile.cpus_per_worker))
    import ray
    from ray.train import TrainingFailedError

    try:
        if profile.check_resources:
            check_resources(profile)
        try:
            result = fit_watched(build_trainer(resolved, profile).fit, profile, _gcs_address(ray))
        except TrainingFailedError as error:
            raise FtdistError(
                f"the Ray Train job {resolved.name} failed (--max-failures {profile.max_failures} restarts "
                f"used up): {str(error).strip().splitlines()[-1]}. Worker logs are above; checkpoints stay in "
                f"{storage_path(resolved, profile)}"
            ) from error
    finally:
        ray.shutdown()
    final_dir = RunFolder(resolved.run_dir).final  # written by rank 0 after the last checkpoint was reported
    return RayLaunchResult(
        checkpoint=Path(result.checkpoint.path) if result.checkpoint else None,
        run_dir=Path(resolved.run_dir),
        final_dir=final_dir if client or final_dir.is_dir() else None,
        metrics=dict(result.metrics or {}),
    )


def with_thread_env(runtime_env: dict | None, cpus_per_worker: float) -> dict:
    """`runtime_env` plus what `pick_cpu_threads` needs in each worker: the user's OMP_NUM_THREADS
    (from the runtime env or this shell; Ray sets its own in every worker) and the worker's CPUs."""
    from ftdist.distributed.device import launcher_thread_env

    runtime_env = dict(runtime_env or {})
    env_vars = dict(runtime_env.get("env_vars") or {})
    runtime_env["env_vars"] = {**launcher_thread_env({**os.environ, **env_vars}, cpus_per_worker), **env_vars}
    return runtime_env


def _gcs_address(ray) -> str:
    """The address a new node joins with (`ray start --address ...`)."""
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:
        return "HEAD:6379"


# --- `python -m launch.ray_train` (e.g. as a `ray job submit` entrypoint) ----------------------------------------
def main(argv: list[str] | None = None) -> int:
    launcher = RayLauncher()
    parser = launcher.configure(argparse.ArgumentParser(prog="python -m launch.ray_train", description=__doc__))
    args = parser.parse_intermixed_args(argv)  # options may follow the key=value overrides
    try:
        return launcher.run(args)
    except FtdistError as error:
        print(f"ftdist launch ray: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
