"""A full disk and a folder that turns read-only mid-run end in one paragraph naming the folder, with nothing
partial left behind, and `latest` still resumes. Both use real filesystems: a small tmpfs, a read-only bind
mount (see mounts.py; they skip where mounting is not permitted)."""

from __future__ import annotations

import pytest
import yaml
from mounts import read_only_switch, resize, small_disk

from conftest import run_cli, tiny_gpt_config
from ftdist.errors import FtdistError
from ftdist.trainer import Trainer

# A checkpoint of the tiny GPT is about 0.54 MB; 1.4 MB holds two of them and the run's small files.
STEPS = ["train.max_steps=30", "checkpoint.every=5", "checkpoint.keep_last=10", "train.eval_every=0"]


def test_full_disk_is_one_paragraph_and_latest_resumes(tmp_path):
    with small_disk(tmp_path / "disk", "1400k") as disk:
        _fill_then_resume(tmp_path, disk)


def _fill_then_resume(tmp_path, disk):
    run_dir = disk / "run"
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_gpt_config(run_dir)))

    full = run_cli("train", str(config_path), *STEPS)
    assert full.returncode == 2, full.stderr
    assert "Traceback" not in full.stderr
    error = full.stderr.strip().splitlines()[-1]
    print(error)
    assert error.startswith("ftdist train: error: could not write ")
    assert "the disk is full on the filesystem holding" in error and "needs about" in error
    assert f"{run_dir / 'checkpoints' / 'latest'} still names step-10" in error
    leftovers = [p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-10"

    resize(disk, "16m")  # the user frees space
    resumed = run_cli("train", str(config_path), *STEPS)
    assert resumed.returncode == 0, resumed.stderr
    said = "".join(resumed.stderr.split())  # the progress view wraps long lines, even inside a path
    assert f"resumedfrom{run_dir / 'checkpoints' / 'step-10'}atstep10" in said
    assert (run_dir / "final" / "model.safetensors").exists()


def test_output_dir_turned_read_only_is_named_and_latest_resumes(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    config = tiny_gpt_config(run_dir)
    with read_only_switch(run_dir) as lock:
        # After the first checkpoint the folder turns read-only while the run goes on.
        with pytest.raises(FtdistError) as caught:
            Trainer(config, STEPS, on_checkpoint=lambda step, folder, metrics: lock(True)).fit()
        message = str(caught.value)
        assert f"could not write {run_dir / 'checkpoints' / 'step-10'}: the filesystem is read-only" in message
        assert "still names step-5" in message and "\n" not in message
        lock(False)
    assert (run_dir / "checkpoints" / "latest").read_text().strip() == "step-5"
    result = Trainer(config, STEPS).fit()
    assert result.step == 30 and (run_dir / "final").is_dir()
