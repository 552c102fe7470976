"""`data.sources`: the schema's errors, exact token shares, a source that runs out, exact resume (in process, on
another world size, and after SIGKILL), and the prepare command's mixture card."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from data_helpers import TINY_LLAMA, config

import ftdist
from conftest import run_cli, train_then_sigkill
from ftdist.cli import main
from ftdist.config import load_config
from ftdist.data import MixtureData, build_data
from ftdist.data.mixture_prepare import prepare_sources
from ftdist.distributed.env import DistEnv
from ftdist.errors import ConfigError


def _corpora(tmp_path: Path, small_lines: int = 40) -> tuple[Path, Path]:
    """Two text sources with disjoint characters (letters / digits), so every token names its source."""
    letters = tmp_path / "letters.txt"
    letters.write_text("".join(f"{'abcdefghij'[i % 10] * (3 + i % 5)} xyz\n" for i in range(3000)))
    digits = tmp_path / "digits.txt"
    digits.write_text("".join(f"{i * 7919 % 100000}\n" for i in range(small_lines)))
    return letters, digits


def _mixture_config(tmp_path: Path, weights=(0.8, 0.2), small_lines: int = 40, **train):
    letters, digits = _corpora(tmp_path, small_lines)
    sources = [{"path": str(letters), "weight": weights[0]}, {"path": str(digits), "weight": weights[1]}]
    cfg = config(tmp_path, recipe="text", sources=sources, seq_len=32)
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=train)}) if train else cfg


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"path": "x.txt", "sources": [{"path": "y.txt"}]}, "data.path and data.sources are both set"),
        ({"sources": []}, "data.sources is empty"),
        ({"sources": [{"path": "y.txt", "weight": -1}]}, "greater than 0"),
        ({"sources": [{"path": "y.txt", "wieght": 1}]}, "Did you mean data.sources.weight"),
        ({"recipe": "stream", "sources": [{"path": "y.txt"}]}, "data.sources\\[0\\] uses recipe stream"),
    ],
)
def test_bad_sources_are_one_sentence_with_the_fix(data, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"data": {"recipe": "text", **data}})


def test_token_shares_follow_the_weights_and_a_short_source_cycles(tmp_path, caplog):
    _, data = build_data(_mixture_config(tmp_path, small_lines=400), DistEnv())
    digit_ids = _digit_ids(tmp_path)
    tokens = [0, 0]  # trained tokens from letters, digits
    drawn: list[tuple] = []  # the short source's rows, in order
    with caplog.at_level(logging.INFO, logger="ftdist.data"):
        for _ in range(1000):
            batch = data.next_batch()  # (2, 32) each; letters and digits never share a token
            for ids, labels in zip(batch["input_ids"].tolist(), batch["labels"], strict=True):
                source = int(any(token in digit_ids for token in ids))
                tokens[source] += int((labels != -100).sum())
                if source:
                    drawn.append(tuple(ids))
    share = tokens[1] / sum(tokens)
    assert abs(share - 0.2) < 0.01, share
    assert data.epochs[1] >= 3 and data.epochs[1] > data.epochs[0]  # the short source ran out and started over
    cycles = [r.getMessage() for r in caplog.records if "ran out" in r.getMessage()]
    assert len(cycles) == sum(data.epochs) and any("data.sources.1" in c for c in cycles)
    rows = len(data.trains[1])
    assert len(set(drawn[:rows])) == rows and set(drawn[:rows]) == set(drawn[rows : 2 * rows])  # each pass: all once


def _digit_ids(tmp_path: Path) -> set[int]:
    """The ids of the digits in the sources' shared char vocabulary (saved under the cache)."""
    from transformers import AutoTokenizer

    folder = next((tmp_path / "cache").glob("char-tokenizer-*"))
    return {i for t, i in AutoTokenizer.from_pretrained(str(folder)).get_vocab().items() if t.isdigit()}


def test_mixture_resumes_exactly_and_on_another_world_size(tmp_path):
    cfg = _mixture_config(tmp_path, weights=(0.6, 0.4))
    prepared = prepare_sources(cfg)
    trains, vals = [p.splits["train"] for p in prepared], [p.splits["val"] for p in prepared]

    def mixture(batch: int, rank: int = 0, world: int = 1) -> MixtureData:
        return MixtureData(trains, vals, [0.6, 0.4], batch, cfg.seed, rank, world)

    straight, ranks = mixture(2), [mixture(1, r, 2) for r in range(2)]  # 2 ranks x 1 = 1 rank x 2
    for _ in range(37):
        both = torch.cat([rank.next_batch()["input_ids"] for rank in ranks])
        torch.testing.assert_close(both, straight.next_batch()["input_ids"])
    state = ranks[0].state_dict()
    assert state == ranks[1].state_dict() == straight.state_dict()
    resumed = mixture(2)
    resumed.load_state_dict(state)
    for _ in range(60):
        torch.testing.assert_close(resumed.next_batch(), straight.next_batch())


def test_prepare_command_prints_each_source_and_the_shares(tmp_path, capsys):
    letters, digits = _corpora(tmp_path)
    yaml_path = tmp_path / "mix.yaml"
    yaml_path.write_text(
        yaml.safe_dump(
            {
                "model": {"scratch": TINY_LLAMA},
                "data": {
                    "recipe": "text",
                    "seq_len": 32,
                    "cache_dir": str(tmp_path / "cache"),
                    "sources": [{"path": str(letters), "weight": 3}, {"path": str(digits), "weight": 1}],
                },
            }
        )
    )
    assert main(["prepare", str(yaml_path)]) == 0
    out = capsys.readouterr().out
    assert out.count("data card: recipe text") == 2
    assert "weight 0.750" in out and "weight 0.250" in out and "of the tokens trained on" in out
    assert main(["prepare", str(yaml_path), "--json"]) == 0
    import json

    shares = [s["share_of_trained_tokens"] for s in json.loads(capsys.readouterr().out)["mixture"]["sources"]]
    assert np.isclose(sum(shares), 1, atol=1e-3) and shares[0] > 0.7


def test_sigkill_then_resume_of_a_mixture_matches_uninterrupted(tmp_path):
    letters, digits = _corpora(tmp_path)
    run = {
        "name": "mix",
        "seed": 3,
        "model": {"tokenizer": "char", "scratch": {"family": "gpt2", "n_layer": 1, "n_head": 2, "n_embd": 16}},
        "data": {
            "recipe": "text",
            "seq_len": 16,
            "cache_dir": str(tmp_path / "cache"),
            "sources": [{"path": str(letters), "weight": 0.8}, {"path": str(digits), "weight": 0.2}],
        },
        "train": {"max_steps": 30, "micro_batch_size": 2, "eval_every": 30, "eval_batches": 1, "log_every": 5},
        "checkpoint": {"every": 10},
        "tracking": {"progress": False},
    }
    path = tmp_path / "mix.yaml"
    path.write_text(yaml.safe_dump(run))
    ftdist.train(run, [f"output_dir={tmp_path / 'ref'}"])  # in this process: one interpreter start less
    killed = tmp_path / "killed"
    train_then_sigkill([str(path), f"output_dir={killed}"], killed, past="step-10")
    resumed = run_cli("train", str(path), f"output_dir={killed}")
    assert resumed.returncode == 0 and "resumed from" in resumed.stderr, resumed.stderr[-3000:]
    from safetensors.torch import load_file

    expected = load_file(tmp_path / "ref" / "final" / "model.safetensors")
    actual = load_file(killed / "final" / "model.safetensors")
    assert all(torch.equal(expected[name], actual[name]) for name in expected)
