"""Resume compares configs: a key the checkpoint's state overrides is reported with the value that wins; a key
that cannot change within a run is refused, with the fix, before any model or data is loaded."""

from __future__ import annotations

import pytest
import yaml

import ftdist
from conftest import run_cli, tiny_gpt_config
from ftdist.checkpoint.resume_check import compare_with_checkpoint
from ftdist.config import load_config
from ftdist.errors import ConfigError

FIRST = ["train.max_steps=10", "checkpoint.every=5", "optim.lr=1e-3"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("resume") / "run"
    ftdist.train(tiny_gpt_config(run_dir), FIRST)
    return run_dir / "checkpoints" / "step-10"


def current(checkpoint, *overrides):
    return load_config(tiny_gpt_config(checkpoint.parent.parent), [*FIRST, *overrides])


def test_same_config_says_nothing(checkpoint):
    assert compare_with_checkpoint(current(checkpoint), checkpoint) is None


def test_overridden_lr_reports_the_value_that_wins(checkpoint):
    note = compare_with_checkpoint(current(checkpoint, "optim.lr=1e30", "train.max_steps=20"), checkpoint)
    assert "optim.lr 0.001 -> 1e+30: the checkpoint's 0.001 wins (its optimizer state holds it)" in note
    assert "train.max_steps 10 -> 20: this run's 20 applies" in note


@pytest.mark.parametrize(
    "override, key",
    [
        ("model.scratch.n_layer=3", "model.scratch.n_layer"),
        ("data.seq_len=32", "data.seq_len"),
        ("method=lora", "method.name"),
        ("data.path=builtin:bible_asv_sample.jsonl", "data.path"),
    ],
)
def test_unchangeable_keys_are_refused_with_the_fix(checkpoint, override, key):
    with pytest.raises(ConfigError, match=rf"cannot resume from .*step-10: {key} is .* there and .* here") as caught:
        compare_with_checkpoint(current(checkpoint, override), checkpoint)
    assert "Put the checkpoint's values back to resume" in str(caught.value)


def test_changed_data_file_is_refused(tmp_path):
    data = tmp_path / "corpus.txt"
    data.write_text("SELECT name FROM users WHERE id = 1;\n" * 200)
    config = tiny_gpt_config(tmp_path / "run")
    config["data"]["path"] = str(data)
    ftdist.train(config, FIRST)
    data.write_text("SELECT name FROM orders WHERE id = 2;\n" * 200)  # same name, other bytes
    with pytest.raises(ConfigError, match=r"the data under data.path=.*corpus.txt changed since it was written"):
        ftdist.train(config, ["train.max_steps=20", *FIRST[1:]])


def test_cli_refuses_another_model_then_reports_the_lr_that_wins(tmp_path):
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_gpt_config(tmp_path / "run")))
    assert run_cli("train", str(config_path), *FIRST).returncode == 0
    more = ["train.max_steps=15", "checkpoint.every=5"]

    refused = run_cli("train", str(config_path), *more, "model.scratch.n_embd=64")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "model.scratch.n_embd is 32 there and 64 here" in refused.stderr

    resumed = run_cli("train", str(config_path), *more, "optim.lr=1e30")
    assert resumed.returncode == 0, resumed.stderr
    said = " ".join(resumed.stderr.split())  # the progress view wraps long lines
    assert "whose config.yaml differs from this run's: optim.lr 0.001 -> 1e+30: the checkpoint's 0.001 wins" in said
