"""Bad input: one clear paragraph, exit code 2, no traceback, no run folder that looks good, nothing overwritten."""

from __future__ import annotations

import yaml

from conftest import run_cli, tiny_gpt_config
from ftdist.cli import main


def _train(capsys, config: dict, *overrides: str, tmp_path) -> tuple[int, str]:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    code = main(["train", str(path), *overrides])
    return code, capsys.readouterr().err


def _assert_clean_failure(code: int, err: str, *fragments: str) -> None:
    assert code == 2
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err  # one paragraph
    for fragment in fragments:
        assert fragment in err, err


def test_misspelled_key(tmp_path, capsys):
    config = tiny_gpt_config(tmp_path / "run")
    config["train"]["max_stpes"] = 3
    code, err = _train(capsys, config, tmp_path=tmp_path)
    _assert_clean_failure(code, err, "line", "unknown key train.max_stpes", "Did you mean train.max_steps?")
    assert not (tmp_path / "run").exists()


def test_wrong_type(tmp_path, capsys):
    config = tiny_gpt_config(tmp_path / "run")
    config["optim"]["lr"] = "fast"
    code, err = _train(capsys, config, tmp_path=tmp_path)
    _assert_clean_failure(code, err, "optim.lr", "'fast'")


def test_missing_data_file(tmp_path, capsys):
    code, err = _train(capsys, tiny_gpt_config(tmp_path / "run"), "data.path=no/such/corpus.txt", tmp_path=tmp_path)
    _assert_clean_failure(code, err, "data.path=no/such/corpus.txt", "no such file")
    assert not (tmp_path / "run").exists()


def test_empty_corpus(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n")
    code, err = _train(capsys, tiny_gpt_config(tmp_path / "run"), f"data.path={empty}", tmp_path=tmp_path)
    _assert_clean_failure(code, err, "is empty")
    assert not (tmp_path / "run").exists()


def test_context_longer_than_corpus(tmp_path, capsys):
    small = tmp_path / "small.txt"
    small.write_text("SELECT a FROM t\n" * 10)  # 160 characters: val split has 16
    code, err = _train(
        capsys, tiny_gpt_config(tmp_path / "run"), f"data.path={small}", "data.seq_len=64", tmp_path=tmp_path
    )
    _assert_clean_failure(code, err, "val split has 16 tokens", "data.seq_len=64", "lower data.seq_len")


def test_unwritable_output_dir(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # chmod cannot stop root (CI runs as root); a path under a regular file cannot be created by anyone.
    code, err = _train(capsys, tiny_gpt_config(blocker / "run"), tmp_path=tmp_path)
    _assert_clean_failure(code, err, "cannot be written", "output_dir=")


def test_resume_never_does_not_overwrite(tmp_path, capsys):
    config = tiny_gpt_config(tmp_path / "run")
    assert main(["train", _write(tmp_path, config), "train.max_steps=10"]) == 0
    checkpoint = tmp_path / "run" / "checkpoints" / "step-10" / "model.safetensors"
    before = checkpoint.read_bytes()
    capsys.readouterr()
    code, err = _train(capsys, config, "checkpoint.resume=never", tmp_path=tmp_path)
    _assert_clean_failure(code, err, "already holds checkpoints", "checkpoint.resume=auto")
    assert checkpoint.read_bytes() == before


def test_cli_process_exit_code_and_no_traceback(tmp_path):
    result = run_cli("train", "cluster_configs/tiny_sql_gpt.yaml", "train.max_step=1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "Did you mean train.max_steps?" in result.stderr


def test_validate_command(tmp_path, capsys):
    assert main(["validate", "cluster_configs/tiny_sql_gpt.yaml"]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["validate", "cluster_configs/tiny_sql_gpt.yaml", "--set", "train.eval_evry=3"]) == 2
    assert "Did you mean train.eval_every?" in capsys.readouterr().err


def _write(tmp_path, config: dict) -> str:
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_resume_with_a_strategy_that_cannot_read_the_checkpoint(tmp_path, capsys):
    config = tiny_gpt_config(tmp_path / "run")
    assert main(["train", _write(tmp_path, config), "train.max_steps=10"]) == 0
    capsys.readouterr()
    code, err = _train(capsys, config, "strategy.name=fsdp", "train.max_steps=20", tmp_path=tmp_path)
    _assert_clean_failure(code, err, "was written by strategy single or ddp", "resume with strategy.name=single")
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step-*")) == ["step-10"]
