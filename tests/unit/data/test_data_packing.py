"""Packing: rows hold several examples, and an example's loss is the same packed as alone.

transformers 5.x isolates examples from `position_ids` that restart at 0 (masking_utils builds a
block-diagonal causal mask when no attention_mask is given). The last test shows the check is sensitive:
without position ids the packed losses do change.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig

from ftdist.data.packing import pack
from ftdist.data.tokenize import IGNORE

SEQ = 32


def examples(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Five examples of 6-20 tokens; the first third of each is a masked prompt."""
    rng = np.random.default_rng(seed)
    out = []
    for length in (9, 20, 6, 14, 12):
        ids = rng.integers(0, 50, length).astype(np.int32)
        labels = ids.copy()
        labels[: length // 3] = IGNORE
        out.append((ids, labels))
    return out


def test_pack_layout():
    rows = pack(examples(), SEQ, pad_id=0)
    assert rows["input_ids"].shape == (2, SEQ)  # 8+19+5+13+11 = 56 positions fit in 2 rows of 32
    for row_positions, _row_labels in zip(rows["position_ids"], rows["labels"], strict=True):
        starts = np.flatnonzero(row_positions == 0)
        assert starts[0] == 0 and all(row_positions[s : s + 2].tolist() == [0, 1] for s in starts[:-1])
    # Every trained target survives, each exactly once, shifted by one inside its own example.
    want = sorted(int(t) for ids, labels in examples() for t in labels[1:] if t != IGNORE)
    assert sorted(int(t) for t in rows["labels"].ravel() if t != IGNORE) == want


def test_no_packing_pads_each_example():
    rows = pack(examples(), SEQ, pad_id=0, packing=False)
    assert rows["input_ids"].shape == (5, SEQ)
    assert (rows["labels"][2, 5:] == IGNORE).all()


def tiny(family: str):
    torch.manual_seed(0)
    if family == "gpt2":
        cfg = GPT2Config(
            vocab_size=50, n_positions=SEQ, n_embd=32, n_layer=2, n_head=4, bos_token_id=None, eos_token_id=None
        )
    else:
        cfg = LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=SEQ,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )
    return AutoModelForCausalLM.from_config(cfg).eval()


def token_losses(model, batch: dict) -> torch.Tensor:
    """Per-position cross-entropy (B, T); 0 where the label is ignored."""
    inputs = {k: torch.as_tensor(v, dtype=torch.long) for k, v in batch.items() if k != "labels"}
    labels = torch.as_tensor(batch["labels"], dtype=torch.long)
    logits = model(**inputs, use_cache=False).logits
    return F.cross_entropy(logits.transpose(1, 2), labels, ignore_index=IGNORE, reduction="none")


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@torch.no_grad()
def test_packing_does_not_change_an_examples_loss(family):
    model = tiny(family)
    data = examples()
    alone = [token_losses(model, {"input_ids": ids[None, :-1], "labels": labels[None, 1:]})[0] for ids, labels in data]
    rows = pack(data, SEQ, pad_id=0)
    packed = token_losses(model, rows)
    # Find each example in the packed rows by its input tokens, and compare position by position.
    for (ids, _labels), own in zip(data, alone, strict=True):
        n = len(ids) - 1
        found = False
        for r in range(rows["input_ids"].shape[0]):
            for start in np.flatnonzero(rows["position_ids"][r] == 0):
                if start + n <= SEQ and (rows["input_ids"][r, start : start + n] == ids[:-1]).all():
                    torch.testing.assert_close(packed[r, start : start + n], own, atol=1e-5, rtol=1e-5)
                    found = True
        assert found
    assert torch.isclose(packed.sum(), sum(x.sum() for x in alone), rtol=1e-5)


@torch.no_grad()
def test_without_position_ids_attention_would_cross_examples():
    model = tiny("llama")
    data = examples()
    rows = pack(data, SEQ, pad_id=0)
    alone = sum(
        token_losses(model, {"input_ids": ids[None, :-1], "labels": labels[None, 1:]}).sum() for ids, labels in data
    )
    leaky = token_losses(model, {"input_ids": rows["input_ids"], "labels": rows["labels"]}).sum()
    assert not torch.isclose(leaky, alone, rtol=1e-4)
