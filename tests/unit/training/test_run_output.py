"""What a run prints and leaves (issue 24): the batch-mode log line, quiet third-party notices, no raw
TensorBoard thread traceback, no misleading memory comparison on tiny runs, per-step LR in the plot, a
portable adapter base on export, a compare report without eval.tasks, and a finished run not silently
resumed. In-process and without training: each builds the few files it needs."""

from __future__ import annotations

import json
import logging
import queue
import threading
from pathlib import Path

import pytest

from conftest import REPO
from ftdist.config import dump_config, load_config
from ftdist.errors import ConfigError

QLORA = REPO / "cluster_configs" / "qlora_llama2_7b_sql.yaml"
TINY_SQL = REPO / "cluster_configs" / "tiny_sql_gpt.yaml"


def test_batch_mode_prints_one_plain_flushed_line_per_logged_step(capsys):
    from ftdist.training.progress import ProgressView

    view = ProgressView(total=800, start=0, is_main=True, show_bar=True)  # stdout is not a terminal here
    assert view.bar is None
    view.update(1)
    view.update(200, 1.2345, 12345.0, 3e-4, 0.871)
    line = capsys.readouterr().out.strip()
    assert line.startswith("step 200/800  loss 1.2345  lr 3.00e-04  grad norm 0.871  12,345 tok/s  peak ")
    assert " GiB  ETA " in line
    assert not ProgressView(10, 0, is_main=False, show_bar=False).plain  # rank 0 only


def test_third_party_notices_are_quiet_unless_verbose(monkeypatch):
    from ftdist.quiet import quiet_third_party

    for name in ("HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY"):
        monkeypatch.delenv(name, raising=False)
    logger = logging.getLogger("DeepSpeed")
    monkeypatch.setattr(logger, "filters", list(logger.filters))
    quiet_third_party()
    assert __import__("os").environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"
    guess = logging.LogRecord("DeepSpeed", logging.WARNING, "", 0, "Setting accelerator to CPU. If ...", None, None)
    assert not logger.filter(guess)
    assert logging.getLogger("bitsandbytes").getEffectiveLevel() == logging.ERROR


def test_tensorboard_writer_thread_storage_error_prints_no_traceback(monkeypatch, capsys):
    from tensorboard.summary.writer.event_file_writer import _AsyncWriterThread

    from ftdist.training.tracking import quiet_tensorboard_writer_thread

    monkeypatch.setattr(threading, "excepthook", threading.__excepthook__)
    quiet_tensorboard_writer_thread()
    thread = _AsyncWriterThread(queue.Queue(), None, 120)
    error = OSError(30, "Read-only file system")
    threading.excepthook(threading.ExceptHookArgs((OSError, error, None, thread)))
    assert "Exception in thread" not in capsys.readouterr().err
    threading.excepthook(threading.ExceptHookArgs((ValueError, ValueError("x"), None, threading.Thread())))
    assert "ValueError" in capsys.readouterr().err  # other threads' errors still print


def test_tiny_cpu_run_does_not_compare_the_planner_with_the_rss():
    from ftdist.planner.runtime import MemoryCheck

    tiny = {"peak_rss_bytes": 900 * 2**20, "peak_rss_rise_bytes": 131 * 2**20, "predicted_peak_bytes": 8 * 2**20}
    text = MemoryCheck.summary({**tiny, "peak_memory_ratio": 16.3})
    assert "planner predicted" not in text and "131.0 MiB" in text
    large = {"peak_memory_bytes": 30 * 2**30, "predicted_peak_bytes": 29 * 2**30, "peak_memory_ratio": 1.03}
    assert "planner predicted 29.0 GiB (1.03x)" in MemoryCheck.summary(large)


def test_lr_plot_follows_the_schedule_at_every_step():
    from ftdist.training.plots import lr_curve

    config = {"schedule": {"name": "linear", "warmup_steps": 5}, "train": {"max_steps": 50}, "optim": {"lr": 1e-3}}
    curve = lr_curve(config)
    assert len(curve) == 51 and curve[0] == (0, pytest.approx(2e-4)) and curve[4][1] == pytest.approx(1e-3)


def test_quantization_can_be_unset_and_a_short_smoke_test_is_accepted():
    config = load_config(QLORA, ["method.name=lora", "method.quantization=null"])
    assert config.method.name == "lora"
    with pytest.warns(UserWarning, match="warming up for 1 step"):
        assert load_config(QLORA, ["train.max_steps=2"]).schedule.warmup_steps == 1


def test_a_shorter_run_pointed_at_a_finished_runs_folder_is_refused(tmp_path):
    from ftdist.checkpoint.resume_check import compare_with_checkpoint

    checkpoint = tmp_path / "checkpoints" / "step-5000"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.yaml").write_text(dump_config(load_config(TINY_SQL)))
    with pytest.raises(ConfigError, match="already at step 5000.*train.max_steps=200.*output_dir=runs/NAME"):
        compare_with_checkpoint(load_config(TINY_SQL, ["train.max_steps=200"]), checkpoint)
    assert "train.max_steps 5000 -> 9000" in compare_with_checkpoint(
        load_config(TINY_SQL, ["train.max_steps=9000"]), checkpoint
    )


def test_an_exported_adapter_names_its_base_portably(tmp_path, monkeypatch):
    from ftdist.export import record_portable_base
    from ftdist.run_folder import resolve_base

    monkeypatch.chdir(tmp_path)
    base = tmp_path / "runs" / "tiny" / "final"
    base.mkdir(parents=True)
    adapter = tmp_path / "export" / "adapter_config.json"
    adapter.parent.mkdir()
    adapter.write_text(json.dumps({"base_model_name_or_path": str(base), "r": 8}))
    record_portable_base(adapter, load_config({"method": "lora", "model": {"path": "runs/tiny/final"}}))
    assert json.loads(adapter.read_text()) == {"base_model_name_or_path": "runs/tiny/final", "r": 8}
    monkeypatch.chdir(tmp_path / "export")  # elsewhere: found from the adapter's parents
    assert resolve_base("runs/tiny/final", adapter.parent) == base
    assert resolve_base("meta-llama/Llama-2-7b-hf", adapter.parent) == "meta-llama/Llama-2-7b-hf"


def _run(folder: Path, val_loss: float) -> Path:
    folder.mkdir()
    events = [
        {"step": 7200, "loss": 1.1, "lr": 1e-3, "tokens_per_s": 900.0},
        {"step": 14400, "train_loss": 0.9, "val_loss": val_loss},
        {"step": 14400, "peak_rss_bytes": 2**31, "peak_rss_rise_bytes": 2**30, "predicted_peak_bytes": 2**20},
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    (folder / "samples.txt").write_text("### SELECT COUNT\nSELECT COUNT(*) FROM t\n\n### SELECT name\nSELECT name")
    return folder


def test_compare_without_eval_tasks_shows_losses_samples_and_marks(tmp_path):
    from ftdist.eval.report import write_report

    runs = [str(_run(tmp_path / "a", 1.25)), str(_run(tmp_path / "b", 1.20))]
    _, markdown = write_report(runs, tmp_path / "report")
    text = markdown.read_text()
    assert "| training | final val_loss | 1.2500 | 1.2000 (best) |" in text
    assert "| train steps | 14,400 | 14,400 |" in text and "| peak process memory (RSS) | 2.00 GiB |" in text
    assert "peak_rss" not in text and "predicted" not in text
    assert "| SELECT COUNT |  | SELECT COUNT(*) FROM t | SELECT COUNT(*) FROM t |" in text
