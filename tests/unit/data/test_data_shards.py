"""Prepared data as memory-mapped shards: boundaries (shards, packing windows, text pieces, worker batches) change
nothing but where rows live; a missing or damaged shard fails naming the file, and a failed prepare publishes
nothing; the order resumes on another world size."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from data_helpers import config

import ftdist.data.build as build
import ftdist.data.recipes.text as text_recipe
import ftdist.data.shards as shards
import ftdist.data.workers as workers
from ftdist.data.prepare import cache_folder, prepare
from ftdist.data.prepared import PreparedData
from ftdist.errors import DataError

QA = {"recipe": "qa", "path": "builtin:chatterbot_qa.jsonl", "seq_len": 256, "truncation": "drop"}


def _rows(split) -> np.ndarray:
    return split.gather(np.arange(len(split)))  # (N, keys, T)


def _row_set(prepared) -> set[bytes]:
    return {row.tobytes() for name in ("train", "val") for row in _rows(prepared.splits[name])}


def test_rows_read_the_same_across_shard_edges(tmp_path, monkeypatch):
    whole = prepare(config(tmp_path / "a", **QA))
    monkeypatch.setattr(shards, "SHARD_BYTES", 7 * 3 * 4 * 256)  # 7 rows per shard
    cut = prepare(config(tmp_path / "b", **QA))
    assert cut.card["shards"]["train"] > 10 and whole.card["shards"]["train"] == 1
    for name in ("train", "val"):
        np.testing.assert_array_equal(_rows(cut.splits[name]), _rows(whole.splits[name]))
        for key in shards.KEYS:  # one key, rows picked across several shards, in any order
            index = np.array([len(cut.splits[name]) - 1, 0, 6, 7, 8])[: len(cut.splits[name])] % len(cut.splits[name])
            np.testing.assert_array_equal(cut.splits[name][key][index], whole.splits[name][key][index])
    one, other = PreparedData(whole.splits, 4, 3), PreparedData(cut.splits, 4, 3)
    for _ in range(30):  # crosses an epoch
        torch.testing.assert_close(one.next_batch(), other.next_batch())


def test_documents_cut_in_pieces_and_windows_give_the_same_chunks(tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("".join(f"line {i}: select name from singer where age > {i};\n" for i in range(400)))
    settings = {"recipe": "text", "path": str(corpus), "seq_len": 64, "chunk_overlap": 8}
    whole = prepare(config(tmp_path / "a", **settings))
    monkeypatch.setattr(text_recipe, "PIECE_CHARS", 100)  # pieces of two lines, tokenized apart
    monkeypatch.setattr(workers, "BATCH_EXAMPLES", 3)  # a document crosses batches
    cut = prepare(config(tmp_path / "b", pack_window=5, **settings))  # and windows
    assert cut.card["pack_window"]["windows"] > 10
    assert cut.card["tokens"] == whole.card["tokens"] and cut.card["examples"] == whole.card["examples"]
    assert _row_set(cut) == _row_set(whole)  # the same chunks; only the train/val draw differs by window


def test_two_workers_write_what_one_writes(tmp_path, monkeypatch):
    monkeypatch.setattr(workers, "BATCH_EXAMPLES", 16)  # many batches, so the pool starts
    one = prepare(config(tmp_path / "a", workers=1, **QA))
    two = prepare(config(tmp_path / "b", workers=2, **QA))
    assert two.card["workers"] == 2 and one.folder.name == two.folder.name  # workers are not in the fingerprint
    for name in ("train", "val"):
        np.testing.assert_array_equal(_rows(one.splits[name]), _rows(two.splits[name]))
    assert one.card["samples"] == two.card["samples"]


def test_a_missing_or_damaged_shard_is_named(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "SHARD_BYTES", 20 * 3 * 4 * 256)
    cfg = config(tmp_path, **QA)
    folder = prepare(cfg).folder
    second = folder / "train-00001.npy"
    data = second.read_bytes()
    second.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        DataError, match=r"train-00001\.npy: this shard of the prepared data is damaged.*ftdist prepare"
    ):
        prepare(cfg)
    second.unlink()
    with pytest.raises(DataError, match=r"train-00001\.npy: this shard of the prepared data is missing"):
        prepare(cfg)


def test_a_shard_that_reads_back_wrong_publishes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "SHARD_BYTES", 20 * 3 * 4 * 256)
    original = shards.ShardWriter._close_shard

    def close_then_damage_the_first(writer):
        original(writer)
        if len(writer.shards) == 2 and writer.split == "train":  # the disk flips a byte of shard 0
            path = writer.folder / writer.shards[0]["file"]
            data = bytearray(path.read_bytes())
            data[-1] ^= 0xFF
            path.write_bytes(bytes(data))

    monkeypatch.setattr(shards.ShardWriter, "_close_shard", close_then_damage_the_first)
    cfg = config(tmp_path, **QA)
    with pytest.raises(DataError, match=r"train-00000\.npy: the shard read back differs.*Nothing was published"):
        prepare(cfg)
    assert not cache_folder(cfg).exists()
    assert not any((tmp_path / "cache").iterdir())  # no staging folder left either


def test_an_old_cache_is_refused_with_the_fix(tmp_path):
    cfg = config(tmp_path, **QA)
    folder = cache_folder(cfg)
    folder.mkdir(parents=True)
    (folder / "card.json").write_text(json.dumps({}))
    (folder / "data.safetensors").write_bytes(b"old")
    with pytest.raises(DataError, match=r"older ftdist.*run `ftdist prepare` again"):
        prepare(cfg)


def test_the_card_shows_what_packing_windows_cost(tmp_path):
    small = prepare(config(tmp_path / "a", pack_window=20, **QA)).card
    whole = prepare(config(tmp_path / "b", **QA)).card
    window = small["pack_window"]
    assert window["windows"] == -(-small["examples"] // 20) and whole["pack_window"]["windows"] == 1
    assert window["padding_share"] >= window["padding_share_if_every_row_full"]
    assert window["padding_share"] > whole["pack_window"]["padding_share"]  # small windows pack worse
    assert small["tokens"] == whole["tokens"]


def test_resume_on_another_world_size_continues_the_same_order(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "SHARD_BYTES", 7 * 3 * 4 * 256)
    splits = prepare(config(tmp_path, **QA)).splits
    ranks = [PreparedData(splits, 2, 5, rank=r, world_size=2) for r in range(2)]
    for _ in range(20):
        for rank in ranks:
            rank.next_batch()
    state = ranks[0].state_dict()
    assert state == ranks[1].state_dict()
    uninterrupted = PreparedData(splits, 4, 5)
    for _ in range(20):
        uninterrupted.next_batch()
    resumed = PreparedData(splits, 4, 5)  # one rank with the same global batch
    resumed.load_state_dict(state)
    for _ in range(30):
        torch.testing.assert_close(resumed.next_batch(), uninterrupted.next_batch())


def test_prepare_memory_is_bounded_by_the_window(tmp_path, monkeypatch):
    """The pipeline never holds more than one window of examples (the corpus size does not matter)."""
    largest = []
    original = build.windows

    def watched(examples, size):
        for window in original(examples, size):
            largest.append(len(window))
            yield window

    monkeypatch.setattr(build, "windows", watched)
    card = prepare(config(tmp_path, pack_window=50, **QA)).card
    assert max(largest) == 50 and sum(largest) == card["examples"]
