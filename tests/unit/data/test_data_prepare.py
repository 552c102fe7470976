"""`ftdist prepare` caching and card, the prepared batch source (exact resume, rank slices), and a short
training run on a prepared recipe whose loss falls."""

from __future__ import annotations

import numpy as np
import torch
from data_helpers import TINY_LLAMA, config

import ftdist
from ftdist.cli import main
from ftdist.data.prepare import prepare
from ftdist.data.prepared import PreparedData


def test_prepare_caches_and_second_call_hits(tmp_path, capsys):
    cfg = config(tmp_path, recipe="qa", path="builtin:chatterbot_qa.jsonl", seq_len=256, truncation="drop")
    first = prepare(cfg)
    assert not first.cache_hit and (first.folder / "index.json").exists()
    second = prepare(cfg)
    assert second.cache_hit and second.folder == first.folder
    for split in ("train", "val"):
        for key, array in first.splits[split].items():
            np.testing.assert_array_equal(array, second.splits[split][key])
    assert second.tokenizer.get_vocab() == first.tokenizer.get_vocab()
    changed = config(tmp_path, recipe="qa", path="builtin:chatterbot_qa.jsonl", seq_len=128, truncation="drop")
    assert not prepare(changed).cache_hit  # a setting that changes the arrays changes the fingerprint
    card = first.card
    assert card["examples"] == card["splits"]["train"]["examples"] + card["splits"]["val"]["examples"]
    assert card["splits"]["train"]["padding_share"] < 0.05
    assert len(card["samples"]) == 3 and all(s.startswith("⟦Question: ") for s in card["samples"])


def test_prepare_command_prints_the_card(tmp_path, capsys):
    yaml = tmp_path / "run.yaml"
    yaml.write_text(
        f"model: {{scratch: {{family: llama, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 64}}}}\n"
        f"data: {{recipe: headings, path: 'builtin:guide.md', seq_len: 256, cache_dir: '{tmp_path / 'c'}'}}\n"
    )
    assert main(["prepare", str(yaml)]) == 0
    out = capsys.readouterr().out
    assert "examples 6," in out and "padding" in out and "label tokens" in out and "⟦Fine-tuning guide" in out
    assert main(["prepare", str(yaml), "data.seq_len=256"]) == 0
    assert "cache hit" in capsys.readouterr().out


def fake_splits(rows: int = 10, seq: int = 4) -> dict:
    ids = np.arange(rows * seq, dtype=np.int32).reshape(rows, seq)
    arrays = {
        "input_ids": ids,
        "labels": ids.copy(),
        "position_ids": np.tile(np.arange(seq, dtype=np.int32), (rows, 1)),
    }
    return {"train": arrays, "val": {k: v[:3] for k, v in arrays.items()}}


def test_prepared_data_resumes_exactly_across_epochs():
    data = PreparedData(fake_splits(), batch_size=3, seed=5)
    for _ in range(4):
        data.next_batch()
    state = data.state_dict()
    expected = [data.next_batch()["input_ids"] for _ in range(6)]  # crosses into later epochs
    resumed = PreparedData(fake_splits(), batch_size=3, seed=5)
    resumed.load_state_dict(state)
    for want in expected:
        torch.testing.assert_close(resumed.next_batch()["input_ids"], want)
    epoch0 = PreparedData(fake_splits(), batch_size=3, seed=5)
    seen = torch.cat([epoch0.next_batch()["input_ids"][:, 0] for _ in range(3)])
    assert len(set(seen.tolist())) == 9  # an epoch never repeats a row


def test_two_ranks_see_the_global_batches_of_one_rank():
    single = PreparedData(fake_splits(), batch_size=4, seed=1)
    ranks = [PreparedData(fake_splits(), batch_size=2, seed=1, rank=r, world_size=2) for r in range(2)]
    for _ in range(5):
        joined = torch.cat([rank.next_batch()["input_ids"] for rank in ranks])
        torch.testing.assert_close(joined, single.next_batch()["input_ids"])
    evals = [torch.cat([b["input_ids"] for b in rank.eval_batches("val", 5, 0)]) for rank in ranks]
    assert sum(len(e) for e in evals) == 4  # one global batch covers the 3 val rows (wrapping once)


def test_training_on_a_prepared_recipe_lowers_the_loss(tmp_path):
    run = {
        "name": "qa",
        "output_dir": str(tmp_path / "run"),
        "seed": 0,
        "model": {"scratch": TINY_LLAMA},
        "data": {
            "recipe": "qa",
            "path": "builtin:bible_qa_sample.jsonl",
            "seq_len": 256,
            "truncation": "drop",
            "cache_dir": str(tmp_path / "cache"),
        },
        "optim": {"lr": 3e-3},
        "schedule": "constant",
        "train": {"max_steps": 20, "micro_batch_size": 2, "eval_every": 20, "eval_batches": 2, "log_every": 10},
        "checkpoint": {"every": 0},
        "tracking": {"progress": False},
    }
    model = ftdist.Trainer(run)
    model.setup()
    first = model.evaluate()["val_loss"]
    model.close()
    result = ftdist.train(run, ["checkpoint.resume=never", f"output_dir={tmp_path / 'run2'}"])
    print(first, result.metrics)
    assert result.metrics["val_loss"] < first - 0.5, (first, result.metrics)
