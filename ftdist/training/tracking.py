"""Metric sinks. `metrics.jsonl` is always written; TensorBoard by default; W&B and MLflow when configured.

Only rank 0 tracks, so a run on N processes logs each metric once. On resume the JSONL file is cut back
to the resumed step and TensorBoard purges later events, so a restarted run shows one continuous curve.
"""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path
from typing import Any

from ftdist.config import RunConfig
from ftdist.errors import FtdistError
from ftdist.run_folder import RunFolder


class JsonlSink:
    def __init__(self, path: Path, resume_step: int) -> None:
        if resume_step and path.exists():  # drop events a killed run logged after its last checkpoint
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
            path.write_text("".join(line + "\n" for line in kept))
        elif not resume_step:
            path.unlink(missing_ok=True)
        self.handle = open(path, "a")

    def log(self, event: dict[str, Any]) -> None:
        self.handle.write(json.dumps(event) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.close()


class TensorBoardSink:
    def __init__(self, folder: Path, resume_step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        quiet_tensorboard_writer_thread()
        self.writer = SummaryWriter(str(folder), purge_step=resume_step + 1 if resume_step else None)

    def log(self, event: dict[str, Any]) -> None:
        for key, value in _numbers(event):
            self.writer.add_scalar(key, value, event["step"])

    def close(self) -> None:
        self.writer.close()


def quiet_tensorboard_writer_thread() -> None:
    """No raw `Exception in thread` traceback when TensorBoard's writer thread cannot write (a full disk, a run
    folder turned read-only): the thread keeps the error and TensorBoard raises it again in the training thread,
    where ftdist reports the folder in one paragraph. Other threads' errors print as before."""
    previous = threading.excepthook
    if getattr(previous, "ftdist_quiet_tensorboard", False):
        return

    def hook(args) -> None:
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            return
        previous(args)

    hook.ftdist_quiet_tensorboard = True
    threading.excepthook = hook


class WandbSink:
    def __init__(self, config: RunConfig, folder: Path) -> None:
        wandb = _require("wandb", "tracking.wandb")
        settings = config.tracking.wandb
        self.run = wandb.init(
            project=settings.project,
            entity=settings.entity,
            mode=settings.mode,
            name=config.name,
            dir=str(folder),
            config=config.model_dump(mode="json"),
            resume="allow",
            id=_stable_id(folder),
        )

    def log(self, event: dict[str, Any]) -> None:
        self.run.log(dict(_numbers(event)), step=event["step"])

    def close(self) -> None:
        self.run.finish()


class MlflowSink:
    def __init__(self, config: RunConfig) -> None:
        self.mlflow = _require("mlflow", "tracking.mlflow")
        settings = config.tracking.mlflow
        if settings.tracking_uri:
            self.mlflow.set_tracking_uri(settings.tracking_uri)
        self.mlflow.set_experiment(settings.experiment)
        self.mlflow.start_run(run_name=config.name)

    def log(self, event: dict[str, Any]) -> None:
        self.mlflow.log_metrics(dict(_numbers(event)), step=event["step"])

    def close(self) -> None:
        self.mlflow.end_run()


class Tracker:
    """Fan one event out to every configured sink."""

    def __init__(self, config: RunConfig, run_dir: Path, resume_step: int = 0) -> None:
        self.sinks: list[Any] = [JsonlSink(RunFolder(run_dir).metrics, resume_step)]
        if config.tracking.tensorboard:
            self.sinks.append(TensorBoardSink(RunFolder(run_dir).tensorboard, resume_step))
        if config.tracking.wandb is not None:
            self.sinks.append(WandbSink(config, run_dir))
        if config.tracking.mlflow is not None:
            self.sinks.append(MlflowSink(config))

    def log(self, step: int, **metrics: Any) -> None:
        event = {"step": step, **metrics}
        for sink in self.sinks:
            sink.log(event)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def check_trackers_installed(config: RunConfig) -> None:
    """Fail before training, not after the first log, when a configured tracker is missing."""
    if config.tracking.wandb is not None:
        _require("wandb", "tracking.wandb")
    if config.tracking.mlflow is not None:
        _require("mlflow", "tracking.mlflow")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = RunFolder(run_dir).metrics
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _numbers(event: dict[str, Any]):
    for key, value in event.items():
        if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield key, value


def _require(module: str, key: str):
    try:
        return __import__(module)
    except ImportError:
        raise FtdistError(
            f"{key} is set but {module} is not installed; pip install {module}, or remove {key}"
        ) from None


def _stable_id(folder: Path) -> str:
    import hashlib

    return hashlib.sha1(str(folder.resolve()).encode()).hexdigest()[:16]
