"""How fast `ftdist prepare` runs, and how much padding packing saves.

    python benchmarks/prepare_speed.py [--repeat N]

1. Speed: the `text` recipe over the Bible (the full ASV from `pythonbible` if installed, else the shipped
   1,868-verse sample repeated) with a real byte-level BPE: GPT-2's, from `openai-whisper`'s gpt2.tiktoken
   (pip install --no-deps openai-whisper==20250625), converted with transformers' TikTokenConverter. Without
   it, a BPE trained on the fly with `tokenizers` is used, and the output says so. The figure is tokens / s
   of the whole `prepare` (read with datasets, tokenize, chunk, pack, write the safetensors cache).
2. Padding: the `instruction` recipe on the shipped Spider sample, packed vs padded to the longest example
   (per batch of 8 in shuffled order, and over the whole set).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ftdist.config import load_config
from ftdist.data.prepare import _tokenize, prepare
from ftdist.data.sources import resolve_data_path

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bpe_tokenizer(folder: Path, corpus: list[str]) -> str:
    """A tokenizer folder: GPT-2 BPE from openai-whisper if installed, else a BPE trained on `corpus`."""
    from transformers import PreTrainedTokenizerFast

    spec = importlib.util.find_spec("whisper")  # never imported: it needs numba and triton
    if spec is not None and importlib.util.find_spec("tiktoken") is not None:  # the converter reads with tiktoken
        from transformers.convert_slow_tokenizer import TikTokenConverter

        ranks = os.path.join(spec.submodule_search_locations[0], "assets", "gpt2.tiktoken")
        backend = TikTokenConverter(
            vocab_file=ranks, pattern=GPT2_PATTERN, additional_special_tokens=["<|endoftext|>"]
        ).converted()
        name = "GPT-2 BPE (openai-whisper gpt2.tiktoken, 50,257 tokens)"
    else:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        backend.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=8000, special_tokens=["<|endoftext|>"]))
        name = "byte-level BPE trained on the fly (8,000 tokens; openai-whisper not installed)"
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    tokenizer.save_pretrained(folder)
    return name


def bible_verses(repeat: int) -> tuple[list[str], str]:
    try:
        import pythonbible as pb

        ids = pb.convert_references_to_verse_ids(pb.get_references("Genesis 1:1-Revelation 22:21"))
        verses = [pb.get_verse_text(v, version=pb.Version.AMERICAN_STANDARD) for v in ids]
        return [v for v in verses if v], "full ASV Bible (pythonbible)"
    except ImportError:
        path = resolve_data_path("builtin:bible_asv_sample.jsonl")
        verses = [json.loads(line)["text"] for line in path.read_text().splitlines()]
        return verses * repeat, f"shipped ASV sample x{repeat}"


def run_config(tmp: Path, tokenizer: Path, **data) -> object:
    return load_config(
        {
            "model": {"scratch": {"family": "gpt2"}, "tokenizer": str(tokenizer)},
            "data": {"cache_dir": str(tmp / "cache"), **data},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=16, help="repeats of the shipped sample without pythonbible")
    args = parser.parse_args()
    import datasets  # noqa: F401  (imported before timing: a one-off start-up cost, not throughput)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        verses, corpus = bible_verses(args.repeat)
        tok_name = bpe_tokenizer(tmp / "tok", verses[:20000])
        source = tmp / "bible.jsonl"
        source.write_text("".join(json.dumps({"text": v}) + "\n" for v in verses))
        cfg = run_config(tmp, tmp / "tok", recipe="text", path=str(source), seq_len=1024)
        started = time.perf_counter()
        prepared = prepare(cfg)
        seconds = time.perf_counter() - started
        tokens = prepared.card["tokens"]
        print(f"tokenizer: {tok_name}")
        print(f"corpus: {corpus}, {len(verses):,} verses, {tokens:,} tokens, cores available: {os.cpu_count()}")
        print(f"ftdist prepare (text recipe, seq_len 1024): {seconds:.2f} s -> {tokens / seconds:,.0f} tokens/s")
        started = time.perf_counter()
        assert prepare(cfg).cache_hit
        print(f"second prepare (cache hit): {time.perf_counter() - started:.2f} s")

        for seq_len in (1024, 2048):
            cfg = run_config(
                tmp,
                tmp / "tok",
                recipe="instruction",
                path="builtin:spider_sql_instructions.jsonl",
                seq_len=seq_len,
                truncation="drop",
            )
            _, tokenized, _ = _tokenize(cfg.model_copy())
            lengths = np.array([len(ids) - 1 for ids, _ in tokenized.examples])
            packed = prepare(cfg).card["splits"]["train"]["padding_share"]
            order = np.random.default_rng(0).permutation(len(lengths))
            batches = [lengths[order[i : i + 8]] for i in range(0, len(order), 8)]
            per_batch = 1 - lengths.sum() / sum(len(b) * b.max() for b in batches)
            whole = 1 - lengths.sum() / (len(lengths) * lengths.max())
            print(
                f"Spider instructions, seq_len {seq_len}: {len(lengths)} examples (mean {lengths.mean():.0f}, "
                f"max {lengths.max()} tokens, {sum(tokenized.dropped.values())} longer dropped); padding share: "
                f"packed {100 * packed:.1f}%, padded to longest per batch of 8 {100 * per_batch:.1f}%, "
                f"padded to longest overall {100 * whole:.1f}%"
            )


if __name__ == "__main__":
    main()
