"""Config loading: unknown keys, wrong types and impossible combinations are clear errors with file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ftdist.config import RunConfig, dump_config, load_config
from ftdist.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "cluster_configs").glob("*.yaml"))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return path


def test_misspelled_key_names_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, "train:\n  max_steps: 10\n  eval_evry: 5\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert f"{path} line 3" in message
    assert "unknown key train.eval_evry" in message
    assert "Did you mean train.eval_every?" in message


def test_key_in_wrong_section_points_to_its_section(tmp_path):
    path = write(tmp_path, "max_steps: 10\n")
    with pytest.raises(ConfigError, match=r"line 1: unknown key max_steps\. Did you mean train\.max_steps\?"):
        load_config(path)


def test_wrong_type_names_key_line_and_value(tmp_path):
    path = write(tmp_path, "model:\n  scratch:\n    n_layer: 4\ntrain:\n  micro_batch_size: lots\n")
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert f"{path} line 5: train.micro_batch_size" in str(error.value)
    assert "'lots'" in str(error.value)


def test_override_beats_file_and_is_typed(tmp_path):
    path = write(tmp_path, "train:\n  max_steps: 10\n")
    config = load_config(path, ["train.max_steps=200", "optim.lr=3e-4", "eval.prompts=[a, b]"])
    assert config.train.max_steps == 200
    assert config.optim.lr == pytest.approx(3e-4)
    assert config.eval.prompts == ["a", "b"]
    assert config.name == "run"  # the file's stem


def test_unknown_override_is_an_error_with_suggestion():
    with pytest.raises(ConfigError, match=r"command-line override 'train\.max_step=3'.*Did you mean train\.max_steps"):
        load_config(None, ["train.max_step=3"])


def test_malformed_override_says_the_form():
    with pytest.raises(ConfigError, match="key.sub=value"):
        load_config(None, ["train.max_steps"])


def test_bare_name_shorthand_for_named_sections():
    config = load_config({"method": "full", "schedule": "cosine", "strategy": "single"})
    assert (config.method.name, config.schedule.name, config.strategy.name) == ("full", "cosine", "single")


def test_cross_field_error_says_how_to_fix():
    with pytest.raises(ConfigError, match="use method: full"):
        load_config({"method": "pretrain", "model": {"path": "some/model"}})


def test_heads_must_divide_width_with_fix():
    with pytest.raises(ConfigError, match="not divisible by model.scratch.n_head=5"):
        load_config(None, ["model.scratch.n_head=5"])


def test_warmup_longer_than_run_is_shortened_with_a_note():
    with pytest.warns(UserWarning, match="warmup_steps=50 is not below train.max_steps=10; warming up for 9"):
        config = load_config({"train": {"max_steps": 10}, "schedule": {"name": "linear", "warmup_steps": 50}})
    assert config.schedule.warmup_steps == 9


def test_invalid_yaml_names_line(tmp_path):
    path = write(tmp_path, "train:\n  max_steps: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_missing_config_file():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("no/such/config.yaml")


def test_dumped_config_round_trips(tmp_path):
    config = load_config(REPO / "cluster_configs" / "tiny_sql_gpt.yaml")
    again = load_config(write(tmp_path, dump_config(config)))
    assert again == config.model_copy(update={"name": config.name})


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_every_shipped_config_validates(path):
    assert isinstance(load_config(path), RunConfig)


def test_tiny_sql_gpt_config_matches_the_paper():
    config = load_config(REPO / "cluster_configs" / "tiny_sql_gpt.yaml")
    scratch = config.model.scratch
    assert (scratch.n_layer, scratch.n_head, scratch.n_embd, scratch.dropout) == (4, 4, 64, 0.0)
    assert (config.data.seq_len, config.train.micro_batch_size, config.optim.lr) == (32, 16, 1e-3)
    assert (config.train.max_steps, config.train.eval_every, config.train.eval_batches) == (5000, 100, 200)
    assert config.data.val_fraction == 0.1
