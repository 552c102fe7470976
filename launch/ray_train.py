"""`ftdist launch ray CONFIG`: run a RunConfig as a Ray Train job (driver side).

The driver resolves the config (file < `--profile` < `key=value` < `--workers`), checks before anything waits
that the cluster answers, can hold the workers and that storage can be written, then runs a
`ray.train.torch.TorchTrainer` whose per-worker loop is `launch.ray_worker.worker_loop` -> `ftdist.train`.
Ray Train restarts a failed worker group up to `ray.max_failures` times; each restart resumes from the last
checkpoint registered with Ray. Also runnable as `python -m launch.ray_train` (e.g. as a `ray job submit`
entrypoint).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ftdist.config import RunConfig, load_config
from ftdist.errors import FtdistError

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


# --- config ---------------------------------------------------------------------------------------------------
def resolve_config(
    config: str | Path | dict, overrides: list[str] | tuple = (), profile: str | None = None, workers: int | None = None
) -> RunConfig:
    """The run config with the profile's `ray:` section, the overrides and `--workers` applied, in that order."""
    extra = profile_overrides(profile) if profile else []
    extra += list(overrides)
    if workers is not None:
        extra.append(f"ray.num_workers={workers}")
    return load_config(config, extra)


def profile_overrides(path: str | Path) -> list[str]:
    """A profile in cluster_configs/ray/ holds one `ray:` section; it becomes `ray.key=value` overrides."""
    path = Path(path)
    if not path.is_file():
        raise FtdistError(f"Ray profile {path} does not exist; see cluster_configs/ray/ for the shipped ones")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict) or set(data) != {"ray"} or not isinstance(data["ray"], dict):
        raise FtdistError(f"Ray profile {path} must hold exactly one mapping, `ray:`, e.g. ray: {{num_workers: 8}}")
    return [f"ray.{key}={json.dumps(value)}" for key, value in data["ray"].items()]


# --- checks that fail fast ------------------------------------------------------------------------------------
def connect(address: str | None, runtime_env: dict | None = None) -> str:
    """`ray.init` the cluster at `address` (`auto`, `host:port`, `ray://host:port`, or `local` for a private one).

    `runtime_env` (env_vars, working_dir, pip ...) applies to every worker of this job."""
    address = address or os.environ.get("RAY_ADDRESS") or "auto"
    if address not in ("auto", "local"):
        _probe(address)
    import ray

    try:
        ray.init(address=None if address == "local" else address, runtime_env=runtime_env, logging_level="WARNING")
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


def check_resources(config: RunConfig) -> None:
    """Refuse a job whose workers cannot all be placed, instead of letting Ray wait for resources forever."""
    import ray

    wanted, count = config.ray.resources(), config.ray.num_workers
    nodes = [node["Resources"] for node in ray.nodes() if node.get("Alive")]
    per_node = [min(math.floor(node.get(k, 0.0) / v + 1e-9) for k, v in wanted.items() if v > 0) for node in nodes]
    room = sum(per_node)
    if config.ray.placement_strategy == "STRICT_SPREAD":
        room = sum(1 for fits in per_node if fits > 0)
    elif config.ray.placement_strategy == "STRICT_PACK":
        room = max(per_node, default=0)
    if room >= count:
        return
    total = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU", "memory") or k in wanted}
    raise FtdistError(
        f"ray.num_workers={count} workers needing {_fmt(wanted)} each do not fit: the cluster ({len(nodes)} "
        f"node(s), {_fmt(total)} in total) has room for {room} with placement {config.ray.placement_strategy}. "
        "Lower --workers or ray.cpus_per_worker / ray.gpus_per_worker, add nodes, or set "
        "ray.check_resources=false on an autoscaling cluster"
    )


def _fmt(resources: dict[str, float]) -> str:
    def one(key: str, value: float) -> str:
        return f"{value / 2**30:.1f} GiB memory" if key == "memory" else f"{value:g} {key}"

    return ", ".join(one(k, v) for k, v in resources.items()) or "nothing"


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
def storage_path(config: RunConfig) -> str:
    return config.ray.storage_path or str(Path(config.run_dir) / "ray")


def build_trainer(config: RunConfig):
    """A TorchTrainer that runs `config` on `ray.num_workers` workers with ftdist's worker loop."""
    from ray.train import CheckpointConfig, FailureConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from launch.ray_worker import worker_loop

    opts = config.ray
    return TorchTrainer(
        worker_loop,
        # Only the keys the user set: a dump of every default would "set" e.g. deepspeed keys under ddp,
        # which the strategy checks reject.
        train_loop_config={"config": config.model_dump(mode="json", exclude_unset=True)},
        torch_config=TorchConfig(backend="nccl" if opts.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=opts.num_workers,
            use_gpu=opts.use_gpu,
            resources_per_worker=opts.resources(),
            placement_strategy=opts.placement_strategy,
        ),
        run_config=RayRunConfig(
            name=config.name,
            storage_path=storage_path(config),
            failure_config=FailureConfig(max_failures=opts.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=config.checkpoint.keep_last),
        ),
    )


def launch(
    config: str | Path | dict,
    overrides: list[str] | tuple = (),
    address: str | None = None,
    profile: str | None = None,
    workers: int | None = None,
    runtime_env: dict | None = None,
) -> RayLaunchResult:
    """Resolve, check, run on the cluster at `address`, and return where the outputs are."""
    resolved = resolve_config(config, overrides, profile, workers)
    client = (address or os.environ.get("RAY_ADDRESS") or "").startswith("ray://")
    if not client and not Path(resolved.run_dir).is_absolute():
        # Workers do not share the driver's working directory; pin the run folder to an absolute path.
        resolved.output_dir = str(Path(resolved.run_dir).resolve())
    if not client:
        check_writable(resolved.run_dir, "output_dir")
        check_writable(storage_path(resolved), "ray.storage_path")
    # The controller reads this when the job starts and passes it on to the workers.
    os.environ[HEALTH_CHECK_ENV] = _HEALTH_CHECK_FROM_USER or str(resolved.ray.health_check_interval_s)
    connect(address, runtime_env)
    import ray
    from ray.train import TrainingFailedError

    try:
        if resolved.ray.check_resources:
            check_resources(resolved)
        try:
            result = build_trainer(resolved).fit()
        except TrainingFailedError as error:
            raise FtdistError(
                f"the Ray Train job {resolved.name} failed (ray.max_failures={resolved.ray.max_failures} restarts "
                f"used up): {str(error).strip().splitlines()[-1]}. Worker logs are above; checkpoints stay in "
                f"{storage_path(resolved)}"
            ) from error
    finally:
        ray.shutdown()
    final_dir = Path(resolved.run_dir) / "final"  # written by rank 0 after the last checkpoint was reported
    return RayLaunchResult(
        checkpoint=Path(result.checkpoint.path) if result.checkpoint else None,
        run_dir=Path(resolved.run_dir),
        final_dir=final_dir if client or final_dir.is_dir() else None,
        metrics=dict(result.metrics or {}),
    )


# --- command line (wired in as `ftdist launch ray`) -------------------------------------------------------------
def add_parser(subparsers) -> argparse.ArgumentParser:
    """`ftdist launch ray ...`. Put options before CONFIG or after the key=value overrides."""
    parser = subparsers.add_parser(
        "ray",
        help="run on a Ray cluster (Ray Train)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("config", help="a run config YAML, e.g. cluster_configs/tiny_llama_full.yaml")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="override config keys, e.g. ray.max_failures=3"
    )
    parser.add_argument(
        "--address",
        default=None,
        help="auto (a cluster started on this node; the default, or $RAY_ADDRESS), HOST:PORT, ray://HOST:10001, "
        "or local (start a private Ray instance for this run)",
    )
    parser.add_argument("--workers", type=int, default=None, help="number of workers (overrides ray.num_workers)")
    parser.add_argument("--profile", default=None, help="a cluster_configs/ray/*.yaml file with a `ray:` section")
    parser.add_argument(
        "--runtime-env-json",
        default=None,
        help='Ray runtime env for the workers, e.g. \'{"env_vars": {"HF_HOME": "/data/hf"}}\'',
    )
    return parser


def run(args: argparse.Namespace) -> int:
    runtime_env = json.loads(args.runtime_env_json) if args.runtime_env_json else None
    result = launch(args.config, args.overrides, args.address, args.profile, args.workers, runtime_env)
    print(
        f"ftdist launch ray: done at step {result.metrics.get('step')}; checkpoint {result.checkpoint}; "
        f"final model {result.final_dir}; run folder {result.run_dir}"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = add_arguments(argparse.ArgumentParser(prog="ftdist launch ray", description=__doc__))
    args = parser.parse_intermixed_args(argv)  # options may follow the key=value overrides
    try:
        return run(args)
    except FtdistError as error:
        print(f"ftdist launch ray: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
