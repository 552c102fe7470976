"""The chunked loss (ftdist/training/chunked_loss.py) equals the plain one: the same loss and the same gradients
within fp32 rounding, with chunks that do not divide the tokens, masked labels, and bf16 autocast; evaluation
and generation still see logits; the preference objectives' response log-probabilities through it equal the
plain ones; and `train.chunked_loss` unset turns it on only for large logits (a preference row counting two
sequences)."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from ftdist.config import load_config
from ftdist.training.chunked_loss import install_chunked_loss
from ftdist.training.loss import IGNORE_INDEX, batch_mean_losses, token_loss_sum
from ftdist.training.objectives.sequence_logps import response_logps

VOCAB = 997


def _model(tied: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=tied,
    )
    return LlamaForCausalLM(config)


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, VOCAB, (3, 23), generator=generator)
    labels = input_ids.roll(-1, dims=1)
    labels[0, :9] = IGNORE_INDEX  # a masked prompt
    labels[:, -1] = IGNORE_INDEX
    return {"input_ids": input_ids, "labels": labels}


@pytest.mark.parametrize(("tied", "autocast"), [(True, False), (False, False), (True, True)])
def test_chunked_loss_and_gradients_equal_the_plain_ones(tied: bool, autocast: bool) -> None:
    plain, chunked = _model(tied), None
    chunked = copy.deepcopy(plain)
    head = install_chunked_loss(chunked, chunk_tokens=10)  # 69 tokens: 6 full chunks and a short one
    assert head is not None
    batch, device = _batch(), torch.device("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        expected = token_loss_sum(plain, batch, device)
        got = token_loss_sum(chunked, batch, device, head)
    expected.backward()
    got.backward()
    # fp32: only the order of the sums differs (measured: 3.6e-6 at most, on gradients up to 5.8)
    # bf16: the chunks sum bf16 partial weight gradients in fp32 (measured: 0.016 at most, on gradients up to 5.9)
    tolerance = {"rtol": 1.6e-2, "atol": 2e-2} if autocast else {"rtol": 1e-5, "atol": 1e-5}
    assert got.dtype == torch.float32 and got.dim() == 0
    torch.testing.assert_close(got, expected, **tolerance)
    for (name, a), b in zip(plain.named_parameters(), chunked.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, **tolerance, msg=f"gradient of {name}")


def test_response_log_probabilities_and_their_gradients_equal_the_plain_ones() -> None:
    """DPO and KTO sum each response's token log-probabilities: through the chunked head, per token."""
    plain = _model(True)
    chunked = copy.deepcopy(plain)
    head = install_chunked_loss(chunked, chunk_tokens=10)
    batch = _batch()
    expected, expected_counted = response_logps(plain, batch["input_ids"], batch["labels"])
    got, counted = response_logps(chunked, batch["input_ids"], batch["labels"], head)
    assert got.shape == (3,) and torch.equal(counted, expected_counted)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    weights = torch.tensor([1.0, -2.0, 0.5])  # a different weight per row, as the DPO loss gives
    (expected * weights).sum().backward()
    (got * weights).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), chunked.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-5, msg=f"gradient of {name}")


def test_outside_the_loss_the_model_still_returns_logits_and_evaluation_agrees() -> None:
    plain = _model(True)
    chunked = copy.deepcopy(plain)
    head = install_chunked_loss(chunked, chunk_tokens=8)
    batch, device = _batch(), torch.device("cpu")
    with torch.no_grad():
        logits = chunked(input_ids=batch["input_ids"]).logits
        assert logits.shape == (3, 23, VOCAB)
        torch.testing.assert_close(logits, plain(input_ids=batch["input_ids"]).logits)
        expected = batch_mean_losses(plain, [batch, batch], device, 1 << 20)
        got = batch_mean_losses(chunked, [batch, batch], device, 1 << 20, head)
    torch.testing.assert_close(torch.stack(got), torch.stack(expected), rtol=1e-5, atol=1e-6)


def test_unset_chunked_loss_is_on_only_for_large_logits_and_never_under_compile() -> None:
    config = load_config("cluster_configs/tiny_sql_gpt.yaml")
    train = config.train.model_copy(update={"micro_batch_size": 2})
    assert train.loss_chunk_tokens(1024, 49152) == 341  # SmolLM2 at 2 x 1024 tokens: 100 M logits
    assert train.loss_chunk_tokens(256, 49152) is None  # 25 M logits: the plain loss
    assert train.model_copy(update={"compile": True}).loss_chunk_tokens(4096, 128256) is None
    assert train.model_copy(update={"chunked_loss": True}).loss_chunk_tokens(16, 100) == (1 << 24) // 100
    assert train.model_copy(update={"chunked_loss": False}).loss_chunk_tokens(8192, 128256) is None
    assert train.loss_chunk_tokens(512, 49152) is None  # 2 rows x 512: 50 M logits
    assert train.loss_chunk_tokens(512, 49152, sequences_per_row=2) == 341  # 2 pairs x 2 x 512: 100 M
