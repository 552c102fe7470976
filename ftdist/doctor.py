"""`ftdist doctor`: check this machine or allocation for one run config, in every process of the job.

Each check is one row: packages, the device and precision the config gets, an all_reduce on the config's
backend (gloo on CPU, nccl on GPU) with its bus bandwidth, a shared-filesystem check under `output_dir` (each
rank writes a checkpoint-sized marker by write + fsync + rename, as checkpoints are published; every rank
then reads every rank's marker), and a 2-step run of the config's method and strategy on a tiny model of the
same family (built from config, on the shipped corpus: no downloads). Rank 0 prints the table; any failure
names its fix and makes the exit status non-zero. Rank and world size come from `ftdist.distributed.env.detect_env`, as
in training, so the same checks run under torchrun, srun and Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
import traceback
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGES = ["torch", "transformers", "peft", "deepspeed", "bitsandbytes", "ray", "submitit"]
COLLECTIVE_MIB = 16  # all_reduce payload: large enough to measure bandwidth, small enough for a second on CPU
MARKER_MIB = 8  # shared-filesystem marker per rank (the tiny model's checkpoint is ~2 MiB; a real one is GBs)
TINY = {"n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64}


@dataclass
class Row:
    check: str
    result: str
    ok: bool = True
    fix: str = ""
    warn: bool = False  # passes, but the config needs a change for this world (said in `result`)


def run_checks(config, env) -> list[Row]:
    """Every check in this process (rank `env.rank` of `env.world_size`); the process group is joined here."""
    import torch.distributed as dist

    rows = [package_row(config)]
    device, row = device_row(config, env)
    rows.append(row)
    if device is None:
        return rows
    rows.append(collective_row(env, device))
    if env.distributed and not dist.is_initialized():
        return rows  # no process group: the next checks need one
    rows.append(shared_fs_row(config, env))
    rows = gather_rows(rows, env)
    if not all(row.ok for row in rows):  # every rank sees the same merged rows: all skip together
        rows.append(Row("2-step run", "skipped: fix the failures above first", warn=True))
        return rows
    rows.append(tiny_run_row(config, env))  # last: the trainer leaves the process group when it ends
    return rows


def package_row(config) -> Row:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    needed = {"deepspeed": config.strategy.name == "deepspeed", "bitsandbytes": config.method.weights == "qlora"}
    missing = [name for name, v in found.items() if v is None and (needed.get(name) or name == "torch")]
    text = ", ".join(f"{name} {v or 'missing'}" for name, v in found.items())
    fix = f"pip install {' '.join(missing)} (the config's strategy/method needs it)" if missing else ""
    return Row("packages", text, not missing, fix)


def device_row(config, env):
    from ftdist.distributed.device import pick_device, pick_precision
    from ftdist.errors import FtdistError
    from ftdist.models import model_width

    try:
        device = pick_device(config.device, env.local_rank)
        precision = pick_precision(config.precision, device, model_width(config))
    except FtdistError as error:
        return None, Row("device, precision", "unusable", False, str(error))
    return device, Row("device, precision", f"{device} ({config.device}), {precision.name} ({config.precision})")


def collective_row(env, device) -> Row:
    import torch
    import torch.distributed as dist

    from ftdist.distributed.process_group import init_distributed

    if not env.distributed:
        return Row("all_reduce", "skipped: 1 process (run with --nproc N, torchrun or srun for N ranks)")
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        init_distributed(env, device, timeout_s=60)
        payload = torch.ones(COLLECTIVE_MIB * 2**20 // 4, device=device)
        dist.all_reduce(payload)  # warm-up (and the connection set-up)
        rounds, started = 3, time.perf_counter()
        for _ in range(rounds):
            dist.all_reduce(payload)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - started) / rounds
        expected = float(env.world_size ** (rounds + 1))
        if payload[0].item() != expected:
            raise RuntimeError(f"all_reduce sum is {payload[0].item()}, expected {expected}")
    except Exception as error:  # a network, NCCL or rendezvous failure: say where to look
        return Row(
            "all_reduce",
            f"{backend} across {env.world_size} ranks failed: {str(error).splitlines()[0][:200]}",
            False,
            "check that every node reaches MASTER_ADDR:MASTER_PORT (firewall, hostname), and pick the network "
            "interface with GLOO_SOCKET_IFNAME / NCCL_SOCKET_IFNAME",
        )
    bus = 2 * (env.world_size - 1) / env.world_size * COLLECTIVE_MIB * 2**20 / seconds / 1e9
    return Row("all_reduce", f"{backend}, {env.world_size} ranks, {COLLECTIVE_MIB} MiB: {seconds * 1e3:.1f} ms, "
               f"bus bandwidth {bus:.2f} GB/s")  # fmt: skip


def shared_fs_row(config, env) -> Row:
    """Each rank publishes a marker (write, fsync, rename) under output_dir; every rank reads all of them."""
    from ftdist.distributed.collectives import any_rank
    from ftdist.distributed.shared_dir import publish_marker, unseen_markers, withdraw_marker

    folder = Path(config.run_dir) / ".doctor"
    problem, seconds = "", 0.0
    try:
        if env.is_main:
            shutil.rmtree(folder / "run", ignore_errors=True)  # the last doctor's 2-step run
        seconds = publish_marker(folder, env.rank, os.urandom(MARKER_MIB * 2**20))
    except OSError as error:
        problem = f"rank {env.rank} cannot write {folder} ({error.strerror or error})"
    any_rank(bool(problem))  # the barrier: every rank has written before any reads
    if not problem and (unseen := unseen_markers(folder, list(range(env.world_size)))):
        problem = f"rank {env.rank} (node {env.node_rank}) cannot see the markers of rank(s) {', '.join(unseen)}"
    any_rank(bool(problem))  # every rank has read before any withdraws its marker
    withdraw_marker(folder, env.rank)
    if problem:
        fix = (
            f"put output_dir ({config.run_dir}) on a file system every node mounts at the same path "
            "(NFS, Lustre, EFS), or pass output_dir=/shared/path"
        )
        return Row("shared output_dir", problem, False, fix)
    rate = MARKER_MIB / seconds if seconds else float("inf")
    return Row("shared output_dir", f"{folder}: {env.world_size} x {MARKER_MIB} MiB written, fsynced, renamed "
               f"({rate:.0f} MiB/s) and read back by every rank")  # fmt: skip


def gather_rows(rows: list[Row], env) -> list[Row]:
    """This rank's rows, with every other rank's failures added (with their fixes): the same verdict on all."""
    import torch.distributed as dist

    if not env.distributed:
        return rows
    everyone: list = [None] * env.world_size
    dist.all_gather_object(everyone, [row.__dict__ for row in rows])
    merged = list(rows)
    for rank, theirs in enumerate(everyone):
        for row in theirs:
            if rank != env.rank and not row["ok"]:
                merged.append(Row(f"{row['check']} (rank {rank})", row["result"], False, row["fix"]))
    return merged


# The shipped data each objective's 2-step run reads (preference rows cut to fit: the prompts are long in characters).
_PREFERENCE = {"recipe": "preference", "seq_len": 256, "truncation": "truncate"}
TINY_DATA = {
    "sft": {"recipe": "stream", "path": "builtin:tiny_sql_corpus.txt", "seq_len": 32},
    "dpo": {**_PREFERENCE, "path": "builtin:spider_sql_preference.jsonl"},
    "reward": {**_PREFERENCE, "path": "builtin:spider_sql_preference.jsonl"},
    "kto": {**_PREFERENCE, "path": "builtin:spider_sql_kto.jsonl"},
}


def tiny_config(config, world_size: int = 1) -> dict:
    """The run config with its model shrunk to a tiny one of the same family, on the shipped corpus, 2 steps.

    `strategy: single` on several ranks becomes ddp (single's multi-process form: the same step, averaged over
    ranks), so the machine is still checked; the row says the config needs a multi-process strategy."""
    raw = config.model_dump(mode="json")
    if raw["strategy"]["name"] == "single" and world_size > 1:
        raw["strategy"] = {"name": "ddp"}
    family = model_family(config)
    raw["model"] = {"tokenizer": "char", "scratch": {"family": family, **TINY}}
    if family == "gpt2":
        raw["model"]["scratch"].pop("n_kv_head")
    raw["data"] = TINY_DATA.get(config.method.objective, TINY_DATA["sft"])
    raw["output_dir"] = str(Path(config.run_dir) / ".doctor" / "run")
    raw["name"] = f"{config.name}-doctor"
    raw["train"].update(max_steps=2, micro_batch_size=2, grad_accum=1, eval_every=0, log_every=1)
    raw["checkpoint"].update(every=2, keep_last=1, resume="never")
    if raw.get("schedule", {}).get("warmup_steps"):
        raw["schedule"]["warmup_steps"] = 1  # below the 2 steps
    raw["tracking"] = {"progress": False, "tensorboard": False}
    raw.pop("eval", None)
    return raw


def model_family(config) -> str:
    """gpt2 or llama: the scratch family, a local folder's model_type, else guessed from the name."""
    if config.model.scratch is not None:
        return config.model.scratch.family
    try:
        model_type = json.loads((Path(config.model.path) / "config.json").read_text()).get("model_type", "")
    except (OSError, TypeError, ValueError):
        model_type = str(config.model.path or "")
    return "gpt2" if "gpt" in model_type.lower() else "llama"


def tiny_run_row(config, env) -> Row:
    from ftdist.config import load_config
    from ftdist.errors import FtdistError
    from ftdist.trainer import train

    single_on_many = config.strategy.name == "single" and env.world_size > 1
    strategy = "ddp" if single_on_many else config.strategy.name
    what = f"{config.method.name} x {strategy}, tiny {model_family(config)}"
    try:
        tiny = load_config(tiny_config(config, env.world_size))
        started = time.perf_counter()
        result = train(tiny)
        seconds = time.perf_counter() - started
        if env.is_main:
            shutil.rmtree(tiny.run_dir, ignore_errors=True)
    except FtdistError as error:
        return Row("2-step run", f"{what}: {error}", False, "fix the config as the message says")
    except Exception as error:
        detail = "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()[-1][:300]
        return Row("2-step run", f"{what}: {detail}", False, "a bug or a broken install: run `ftdist train` on "
                   "the config for the traceback, and report it with this table")  # fmt: skip
    loss = result.metrics.get("loss")
    loss_text = f", loss {loss:.3f}" if isinstance(loss, float) else ""
    text = f"{what}: {result.step} steps in {seconds:.1f} s{loss_text}, checkpoint saved"
    if single_on_many:
        text += (
            f". The config's strategy: single runs 1 process, not {env.world_size}: train it with strategy=ddp "
            "(or fsdp / deepspeed)"
        )
    return Row("2-step run", text, warn=single_on_many)


def print_table(rows: list[Row], config_path: str, env) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"ftdist doctor {config_path} ({env.world_size} process(es), launcher {env.launcher})")
    for column in ("check", "result", "status"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row.check, row.result, "FAIL" if not row.ok else "warn" if row.warn else "ok")
    # A log (Slurm, CI, a pipe) gets each row on one line, so that a grep for a verdict finds it whole; a
    # terminal keeps its own width.
    longest = max(len(row.check) + len(row.result) for row in rows) + 20
    console = Console(width=None if sys.stdout.isatty() else max(140, longest), soft_wrap=False)
    console.print(table)
    for row in rows:
        if not row.ok:
            message = f"ftdist doctor: {row.check} failed: {row.result.rstrip('.')}. Fix: {row.fix}"
            console.print(message, soft_wrap=True)
