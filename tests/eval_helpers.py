"""Tiny models for the eval tests: a 2-layer Llama (32 wide) with a character tokenizer covering the shipped
eval files, and a 1-layer reward model built from config. Both save as ordinary HF folders in seconds."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from ftdist.models.char_tokenizer import build_char_tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "ftdist" / "assets"
TEXT_FILES = ["bibleqa_dev.jsonl", "spider_sql_instructions.jsonl", "eval_questions.jsonl", "tiny_sql_corpus.txt"]


def corpus_text() -> str:
    return "".join((ASSETS / name).read_text(encoding="utf-8") for name in TEXT_FILES) + "Q: A:\n"


def _llama(vocab: int, seed: int, **extra) -> LlamaConfig:
    torch.manual_seed(seed)
    return LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=None, eos_token_id=None, **extra,
    )  # fmt: skip


def save_tiny_lm(folder: Path, seed: int = 0) -> Path:
    tokenizer = build_char_tokenizer(corpus_text())
    LlamaForCausalLM(_llama(len(tokenizer), seed, pad_token_id=None)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def save_tiny_reward_model(folder: Path) -> Path:
    tokenizer = build_char_tokenizer(corpus_text())
    tokenizer.add_special_tokens({"pad_token": "[PAD]"})
    config = _llama(len(tokenizer), 1, pad_token_id=tokenizer.pad_token_id, num_labels=1)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
