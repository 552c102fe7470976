"""Bad data stops with a message naming the file, the line or row, and the problem; never an empty example."""

from __future__ import annotations

import pytest
from data_helpers import config, tokenize, write_jsonl

from ftdist.errors import DataError


def test_malformed_jsonl_names_the_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"instruction": "a", "output": "b"}\n\n{"instruction": "c", "output": \n')
    with pytest.raises(DataError, match=r"bad\.jsonl line 3: malformed JSON"):
        tokenize(config(tmp_path, recipe="instruction", path=str(path), seq_len=64))


def test_missing_column_lists_the_columns_present(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"prompt": "a", "completion": "b"}])
    with pytest.raises(DataError, match=r"column 'instruction'.*missing; the columns present are prompt, completion"):
        tokenize(config(tmp_path, recipe="instruction", path=str(path), seq_len=64))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n  \n")
    with pytest.raises(DataError, match=r"empty\.jsonl is empty"):
        tokenize(config(tmp_path, recipe="qa", path=str(path), seq_len=64))


def test_chat_without_assistant_turn(tmp_path):
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "x"}]},
    ]
    path = write_jsonl(tmp_path / "c.jsonl", rows)
    with pytest.raises(DataError, match=r"c\.jsonl line 2: the conversation has no assistant turn"):
        tokenize(config(tmp_path, recipe="chat", path=str(path), seq_len=128))


def test_unknown_role_suggests_role_map(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "human", "content": "hi"}]}])
    with pytest.raises(DataError, match=r"line 1: message 1 has role 'human'.*data.chat.role_map"):
        tokenize(config(tmp_path, recipe="chat", path=str(path), seq_len=128))


def test_empty_response_is_an_error_not_an_empty_example(tmp_path):
    path = write_jsonl(tmp_path / "a.jsonl", [{"question": "q", "answer": "a"}, {"question": "q", "answer": " "}])
    with pytest.raises(DataError, match=r"a\.jsonl line 2: column 'answer'.*is empty"):
        tokenize(config(tmp_path, recipe="qa", path=str(path), seq_len=64))


def long_rows(tmp_path):
    return write_jsonl(
        tmp_path / "l.jsonl",
        [
            {"question": "q", "answer": "short"},
            {"question": "q" * 10, "answer": "a" * 40},
            {"question": "q" * 40, "answer": "a"},
        ],
    )


def test_too_long_under_truncation_error(tmp_path):
    with pytest.raises(DataError, match=r"l\.jsonl line 2: the example is 69 tokens, longer than data.seq_len"):
        tokenize(config(tmp_path, recipe="qa", path=str(long_rows(tmp_path)), seq_len=31))


def test_too_long_under_drop_and_truncate_is_counted(tmp_path):
    path = str(long_rows(tmp_path))
    _, dropped, _ = tokenize(config(tmp_path, recipe="qa", path=path, seq_len=31, truncation="drop"))
    assert len(dropped.examples) == 1 and sum(dropped.dropped.values()) == 2 and dropped.truncated == 0
    _, cut, _ = tokenize(config(tmp_path, recipe="qa", path=path, seq_len=31, truncation="truncate"))
    # Row 2 is cut to 32 tokens; row 3's answer would be cut away entirely, so it is dropped, not kept empty.
    assert len(cut.examples) == 2 and cut.truncated == 1 and sum(cut.dropped.values()) == 1
    assert all(len(ids) <= 32 for ids, _ in cut.examples)


def test_config_rejects_unknown_column_and_big_overlap(tmp_path):
    from ftdist.errors import ConfigError

    with pytest.raises((ConfigError, ValueError), match="data.columns has answer"):
        config(tmp_path, recipe="instruction", columns={"answer": "x"})
    with pytest.raises((ConfigError, ValueError), match="chunk_overlap"):
        config(tmp_path, recipe="text", seq_len=8, chunk_overlap=8)
