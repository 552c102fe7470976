"""`Trainer(config).fit()`: the one training loop every method, strategy and launcher shares.

The loop reads as phases: set up, then per step `train_step` -> log -> evaluate -> checkpoint, then
finish. Strategy-specific work (wrapping, backward, stepping, sharded saving) is behind `self.strategy`;
method-specific work (adapters, quantization) happened in `Method.apply` before the loop began.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ftdist.checkpoint.checkpointer import Checkpointer
from ftdist.config import RunConfig, dump_config, load_config
from ftdist.data import build_data
from ftdist.distributed.collectives import mean_over_ranks, on_rank0
from ftdist.distributed.device import pick_cpu_threads, pick_device, pick_precision
from ftdist.distributed.env import detect_env
from ftdist.distributed.host_memory import file_pages_returned, released_on_free
from ftdist.distributed.process_group import init_distributed, shutdown_distributed
from ftdist.distributed.shared_dir import check_shared_output_dir
from ftdist.errors import FtdistError
from ftdist.eval.hook import RunEval
from ftdist.methods import method_class
from ftdist.models import count_parameters, model_width
from ftdist.models.recipe import ModelRecipe
from ftdist.models.saving import save_hf
from ftdist.planner.runtime import MemoryCheck, hardware_for_device
from ftdist.planner.workload import chunk_tokens
from ftdist.preflight import World, preflight, resolve_auto_strategy
from ftdist.run_folder import RunFolder
from ftdist.staging import StorageError, publish_text, staged_folder, storage_errors
from ftdist.strategies import build_strategy, strategy_class
from ftdist.training.chunked_loss import install_chunked_loss
from ftdist.training.finite import FiniteWatch, nonfinite_error, weights_finite
from ftdist.training.objectives import build_objective
from ftdist.training.optim import build_optimizer, build_scheduler
from ftdist.training.preemption import PreemptionFlag
from ftdist.training.progress import LogWindow, ProgressView
from ftdist.training.tracking import Tracker, check_trackers_installed

# Called on every rank after each checkpoint is sealed: (step, checkpoint folder, latest logged metrics).
# Launchers use it to register checkpoints with their own bookkeeping (Ray Train's `report`); the loop itself
# never learns which launcher runs it.
CheckpointCallback = Callable[[int, Path, dict[str, float]], None]


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    final_dir: Path | None = None
    preempted: bool = False
    metrics: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Train one RunConfig. Construct with a RunConfig, a YAML path or a dict (plus `key=value` overrides)."""

    def __init__(
        self,
        config: RunConfig | str | Path | dict,
        overrides: list[str] | tuple = (),
        on_checkpoint: CheckpointCallback | None = None,
    ) -> None:
        self.config: RunConfig = load_config(config, overrides)
        self.on_checkpoint = on_checkpoint
        self.last_logged: dict[str, float] = {}
        self.env = detect_env()
        self.run_dir = Path(self.config.run_dir)
        self.run = RunFolder(self.run_dir)
        self.step = 0
        self.last_eval: dict[str, float] = {}

    # --- the loop ----------------------------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        try:
            self.setup()
        except BaseException as error:
            self._discard_empty_run_dir()
            self.close(failing=error)
            raise
        try:
            while self.step < self.config.train.max_steps:
                if self.preemption.should_stop():
                    self.checkpointer.save_now(self.step)
                    self.view.say(
                        f"{self.preemption.received or 'stop'} received: saved step {self.step}, exiting to be requeued"
                    )
                    return TrainResult(self.run_dir, self.step, preempted=True, metrics=self.last_eval)
                started = time.perf_counter()
                loss = self.train_step()
                self.step += 1
                if self.config.train.compile and self.step == self.view.start + 1:
                    self.view.say(f"train.compile: the first step took {time.perf_counter() - started:.1f} s")
                self.after_step(loss, time.perf_counter() - started)
            return self.finish()
        except BaseException as error:
            self.failing = error  # close() must not hide this error behind a second one (e.g. a full disk)
            raise
        finally:
            self.close(getattr(self, "failing", None))

    def train_step(self) -> torch.Tensor:
        """One optimizer step over `grad_accum` micro-batches; returns the mean loss per counted unit (token,
        or preference row). The objective's metrics for the step are added to the log window."""
        micro_batches = [self.data.next_batch() for _ in range(self.config.train.grad_accum)]
        counted = max(1, sum(self.objective.count(batch) for batch in micro_batches))
        total = torch.zeros((), device=self.device)
        metrics: dict[str, torch.Tensor] = {}
        for index, batch in enumerate(micro_batches):
            with self.strategy.accumulating(self.model, last_micro_step=index == len(micro_batches) - 1):
                with self.strategy.autocast():
                    loss_sum, parts = self.objective.loss_sum(self.model, batch)
                    loss = loss_sum / counted
                self.strategy.backward(loss, self.model)
            total += loss.detach()
            for key, value in parts.items():
                metrics[key] = metrics.get(key, 0) + value / counted
        self.window.add_metrics(metrics)
        self.checkpointer.before_update()  # an asynchronous save's host copy is complete before the weights change
        self.grad_norm = self.strategy.step(self.model, self.optimizer)
        self.scheduler.step()
        self.finite.observe(total, self.step + 1)  # on the device: no host sync per step
        return total

    def after_step(self, loss: torch.Tensor, seconds: float) -> None:
        cfg = self.config.train
        self.window.add(loss, self.tokens_per_step, seconds)
        if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
            self.check_finite(weights=False)  # every step since the last log, not only this one
            metrics = {key: float(mean_over_ranks(v)) for key, v in self.window.metric_means().items()}
            mean, tokens_per_s = self.window.take()  # the interval's mean loss and average rate, as HF logs them
            value = float(mean_over_ranks(mean))  # the global batch's loss, not rank 0's share
            norm = {"grad_norm": self.grad_norm} if math.isfinite(self.grad_norm) else {}  # nan: not measured
            lr = self.scheduler.get_last_lr()[0]
            self.log(loss=value, lr=lr, tokens_per_s=tokens_per_s, **norm, **metrics)
            self.view.update(self.step, value, tokens_per_s, lr, norm.get("grad_norm"), metrics)
        else:
            self.view.update(self.step)
        if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == cfg.max_steps):
            self.last_eval = self.evaluate()
            self.log(**self.last_eval)
            accuracy = self.last_eval.get("val_accuracy")  # preference runs: the share of pairs ranked right
            self.view.say(
                f"step {self.step}: train loss {self.last_eval['train_loss']:.4f}, "
                f"val loss {self.last_eval['val_loss']:.4f}"
                + (f", val accuracy {accuracy:.3f}" if accuracy is not None else "")
            )
        self.checkpointer.maybe_save(self.step)

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Mean loss (and the objective's metrics) over `train.eval_batches` batches of each split (the tiny SQL
        GPT paper's estimate for tokens)."""
        self.model.eval()
        result = {}
        for split in ("train", "val"):
            batches = self.data.eval_batches(split, self.config.train.eval_batches, self.step)
            with self.strategy.autocast():
                means = self.objective.evaluate(self.model, batches, split)
            for key, value in means.items():
                result[f"{split}_{key}"] = float(mean_over_ranks(value))
        self.model.train()
        return result

    # --- setup and teardown ---------------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.config
        self._created_run_dir = not self.run_dir.exists()
        self._check_output_dir()
        check_trackers_installed(cfg)
        self.setup_job()
        cfg = self.config  # `strategy: auto` is concrete from here on
        resume_from, resume_notes = self.checkpointer.resume_point()  # before any data or model is loaded
        torch.manual_seed(cfg.seed)
        self.tokenizer, self.data = build_data(cfg, self.env)
        self.tokens_per_step = self.data.tokens_per_batch * cfg.train.grad_accum * self.env.world_size
        self.run_eval = RunEval(cfg, self.run_dir, self.env, self.device)
        self.run_eval.before_training(self.tokenizer)  # eval/base.json, when eval.tasks is set
        self.setup_model()
        self.window = LogWindow(self.device)
        parts = {"scheduler": self.scheduler, "data": self.data, "scaler": self.strategy, "log_window": self.window}
        self.checkpointer.track(self.model, self.optimizer, self.tokenizer, parts, before_save=self.check_finite)
        if resume_from is not None:
            self.step = self.checkpointer.load(resume_from)
        self.objective.before_training(self)  # DPO/KTO: the reference scores, computed once or read back
        self.model.train()
        self.preemption = PreemptionFlag()
        self.finite = FiniteWatch(self.device)
        self.tracker = Tracker(cfg, self.run_dir, self.step) if self.env.is_main else None
        if self.env.is_main:
            publish_text(self.run.config, dump_config(cfg))  # a full disk here is one paragraph too
        self.view = ProgressView(cfg.train.max_steps, self.step, self.env.is_main, cfg.tracking.progress)
        for line in (self._banner(resume_from), self.auto_choice, self.memory.banner(), resume_notes):
            if line:
                self.view.say(line)

    def setup_job(self) -> None:
        """Device, precision and threads; `strategy: auto` resolved; preflight for this world; the process
        group; the strategy with the method's state filter."""
        cfg = self.config
        self.device = pick_device(cfg.device, self.env.local_rank)
        width = model_width(cfg)
        self.precision = pick_precision(cfg.precision, self.device, width)
        self._threads_before, threads = torch.get_num_threads(), pick_cpu_threads(self.device, width)
        if threads is not None:
            torch.set_num_threads(threads)  # restored by close(): ftdist.train() may run inside a user's process
        world = World(self.env.world_size, self.device.type)
        cfg, self.auto_choice = resolve_auto_strategy(cfg, world, hardware_for_device(self.device, world.size))
        self.config = cfg
        preflight(cfg, world)  # the launcher ran it too; the world may differ
        init_distributed(self.env, self.device, always=strategy_class(cfg.strategy.name).needs_process_group)
        check_shared_output_dir(self.run_dir, self.env.rank, self.env.node_rank)
        self.memory = MemoryCheck(cfg, self.env.world_size, self.device, self.precision.name)  # before the model
        self.method = method_class(cfg.method.weights)
        self.strategy = build_strategy(cfg, self.env, self.device, self.precision, self.method.state_filter)
        self.checkpointer = Checkpointer(cfg, self.run, self.env, self.strategy, self._checkpoint_saved)

    def setup_model(self) -> None:
        """The method's model, wrapped by the strategy, with its optimizer and schedule."""
        cfg = self.config
        recipe = ModelRecipe.for_run(cfg, self.tokenizer, self.method, self.precision)
        copied = self.strategy.copies_loaded_weights or self.device.type != "cpu"
        read_pages = file_pages_returned(recipe.weight_files() if copied else [])
        with released_on_free(), read_pages:  # what the load frees or has read leaves the process (host_memory.py)
            model = self.strategy.materialize(recipe)
            self.trainable, self.total_params = count_parameters(model)
            build = lambda m: build_optimizer(m, cfg.optim, self.device)  # noqa: E731
            self.model, self.optimizer = self.strategy.prepare(model, build)
        self.scheduler = build_scheduler(self.optimizer, cfg.schedule, cfg.train.max_steps)
        vocab = self.strategy.unwrap(self.model).config.vocab_size
        self.loss_head = install_chunked_loss(self.strategy.unwrap(self.model), chunk_tokens(cfg, vocab))
        self.objective = build_objective(cfg, self.strategy, self.device, self.loss_head)
        self.objective.check_data(self.data, f"data.path={cfg.data.path}")
        if cfg.train.compile:
            self.model.compile()  # in place: state-dict names stay; compiles at the first forward

    def _check_output_dir(self) -> None:
        """Fail before any data or model is loaded if the run folder cannot be written."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            probe = self.run_dir / f".write-test.rank{self.env.rank}"  # one per rank: ranks probe at once
            probe.write_text("ok")
            probe.unlink()
        except OSError as error:
            raise FtdistError(
                f"output_dir={self.run_dir} cannot be written ({error.strerror}); choose a folder you "
                "can write to, e.g. output_dir=runs/my-run"
            ) from None

    def _discard_empty_run_dir(self) -> None:
        """A run that failed during setup leaves no folder behind that could pass for a real run."""
        if getattr(self, "_created_run_dir", False) and self.run_dir.is_dir() and not any(self.run_dir.iterdir()):
            self.run_dir.rmdir()

    def _banner(self, resume_from: Path | None) -> str:
        share = 100 * self.trainable / max(1, self.total_params)
        where = f"resumed from {resume_from} at step {self.step}" if resume_from else "starting at step 0"
        if self.env.restart_count:  # Slurm requeued this job (preemption or time limit)
            where += f" | SLURM_RESTART_COUNT={self.env.restart_count}"
        return (
            f"ftdist: {self.config.name} | {self.config.method.name} | {self.config.strategy.name} x"
            f"{self.env.world_size} on {self.device} ({self.precision.name}) | {self.trainable:,} of "
            f"{self.total_params:,} parameters train ({share:.2f}%) | {where} | run folder {self.run_dir}"
        )

    def log(self, **metrics: Any) -> None:
        self.last_logged.update(metrics)
        if self.tracker is not None:
            self.tracker.log(self.step, **metrics)

    def close(self, failing: BaseException | None = None) -> None:
        """Flush and release everything. After a failure, errors while flushing are dropped (the first error is
        the one the user must see); after a storage failure the trackers are not flushed at all, since their
        folder is the one that is full or read-only (tensorboard's writer thread would print a traceback)."""
        if getattr(self, "_threads_before", None):
            torch.set_num_threads(self._threads_before)
        with contextlib.suppress(Exception) if failing else storage_errors(self.run_dir):
            if getattr(self, "view", None):
                self.view.close()
            if getattr(self, "tracker", None) and not isinstance(failing, StorageError):
                self.tracker.close()
        if getattr(self, "checkpointer", None):
            self.checkpointer.abandon()  # a save in flight ends (sealed or discarded) before the process does
        if getattr(self, "preemption", None):
            self.preemption.restore()
        shutdown_distributed()

    # --- checkpoints ----------------------------------------------------------------------------------------
    def check_finite(self, weights: bool = True) -> None:
        """Stop, naming the last finite checkpoint, if any step's loss (or, before a save, any weight) is not
        finite. Collective: every rank calls it at the same step."""
        first = self.finite.first_bad_step(mean_over_ranks)
        if first is not None:
            what = f"the loss was first not finite at step {first}" if first > 0 else "the loss was not finite"
        elif weights and float(mean_over_ranks(weights_finite(self.model))) > 0:
            what = f"the model's weights were not finite after the update at step {self.step}"
        else:
            return
        latest = self.checkpointer.latest() if self.env.is_main else None
        last_good = (
            f"The last finite checkpoint is {latest}, which checkpoint.resume=auto continues from"
            if latest
            else "No finite checkpoint of this run exists"
        )
        raise nonfinite_error(self.step, what, last_good)

    def _checkpoint_saved(self, step: int, folder: Path) -> None:
        if self.on_checkpoint is not None:
            self.on_checkpoint(step, folder, dict(self.last_logged))

    # --- the end of a run -----------------------------------------------------------------------------------
    def finish(self) -> TrainResult:
        self.checkpointer.save_last(self.step)
        final_dir = self.export_final()
        memory = self.memory.measure()  # before generation adds its own peak
        self.log(**memory, **self.checkpointer.stall_metrics())
        if self.env.is_main:
            self.view.close()
            from ftdist.training.finish import write_run_artifacts

            model = self.strategy.unwrap(self.model)
            if self.env.distributed and self.config.eval.prompts:
                # Sharded weights (FSDP, ZeRO-3) cannot generate on rank 0 alone: sample from the gathered copy.
                from ftdist.models import load_pretrained

                model = load_pretrained(str(final_dir)).to(self.device)
            write_run_artifacts(self.config, self.run_dir, model, self.tokenizer, self.device)
            self.view.say(self.memory.summary(memory))
            self.view.say(f"done: step {self.step}, final model in {final_dir}")
        summary = self.run_eval.after_training(final_dir)  # eval/tuned.json beside eval/base.json
        if summary:
            self.view.say(summary)
        return TrainResult(self.run_dir, self.step, final_dir, metrics=self.last_eval)

    def export_final(self) -> Path:
        """`final/`: a Hugging Face folder, written aside and renamed, so it is either whole or absent. Every rank
        returns once it is in place (evaluation then reads it on every rank)."""
        state = self.strategy.full_state_dict(self.model)  # collective

        def write() -> None:
            intact = self.checkpointer.intact()
            with staged_folder(
                self.run.final, intact=f"The trained state is safe in the checkpoints: {intact}"
            ) as staging:
                save_hf(self.strategy.unwrap(self.model), staging, state)
                self.tokenizer.save_pretrained(staging)

        on_rank0(write, f"writing {self.run.final}")
        return self.run.final


def train(
    config: RunConfig | str | Path | dict,
    overrides: list[str] | tuple = (),
    on_checkpoint: CheckpointCallback | None = None,
) -> TrainResult:
    """Train a run to the end (or until preempted). The entry point every launcher calls in each worker."""
    return Trainer(config, overrides, on_checkpoint).fit()
