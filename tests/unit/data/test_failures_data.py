"""Bad data ends in one paragraph: invalid UTF-8 names the file, the line and the byte offset; a file whose
rows are all dropped says how many were dropped and why."""

from __future__ import annotations

import pytest
import yaml
from data_helpers import config, write_jsonl

from conftest import run_cli
from ftdist.data.prepare import prepare
from ftdist.errors import DataError


def latin1_jsonl(tmp_path):
    path = tmp_path / "latin1.jsonl"
    good = '{"question": "q", "answer": "caf\u00e9"}\n'.encode()
    bad = '{"question": "q", "answer": "caf\u00e9"}\n'.encode("latin-1")  # \xe9 alone is not UTF-8
    path.write_bytes(good + good + bad)
    return path, len(good) * 2 + bad.index(b"\xe9")


def test_invalid_utf8_names_file_line_and_byte(tmp_path):
    path, offset = latin1_jsonl(tmp_path)
    with pytest.raises(DataError, match=rf"latin1\.jsonl line 3 \(byte offset {offset}\) is not valid UTF-8"):
        prepare(config(tmp_path, recipe="qa", path=str(path), seq_len=64))


def test_invalid_utf8_on_the_cli_has_no_traceback(tmp_path):
    path, offset = latin1_jsonl(tmp_path)
    run = {
        "name": "t",
        "output_dir": str(tmp_path / "run"),
        "model": {"tokenizer": "char", "scratch": {"family": "gpt2", "n_layer": 1, "n_head": 1, "n_embd": 8}},
        "data": {"recipe": "qa", "path": str(path), "seq_len": 32, "cache_dir": str(tmp_path / "cache")},
    }
    config_path = tmp_path / "run.yaml"
    config_path.write_text(yaml.safe_dump(run))
    result = run_cli("prepare", str(config_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"line 3 (byte offset {offset}) is not valid UTF-8" in result.stderr


def test_stream_text_with_invalid_utf8(tmp_path):
    from ftdist.data.sources import read_text

    path = tmp_path / "corpus.txt"
    path.write_bytes(b"SELECT 1;\nSELECT \xff;\n")
    with pytest.raises(DataError, match=r"corpus\.txt line 2 \(byte offset 17\) is not valid UTF-8"):
        read_text(str(path))


def test_all_rows_dropped_says_how_many_and_why(tmp_path):
    rows = [{"question": "q" * 40, "answer": "a" * 40}] * 3
    path = write_jsonl(tmp_path / "long.jsonl", rows)
    with pytest.raises(DataError) as caught:
        prepare(config(tmp_path, recipe="qa", path=str(path), seq_len=16, truncation="drop"))
    message = str(caught.value)
    assert "only 0 example(s) left after tokenization: 3 of 3 example(s) were dropped under data.truncation: drop" in (
        message
    )
    assert "longer than data.seq_len + 1 = 17 tokens" in message and "data.truncation=truncate" in message
