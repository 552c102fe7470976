"""The data card: what `ftdist prepare` made, in numbers and three decoded samples.

In the samples, text inside ⟦ ⟧ is masked (labels -100: read by the model, not trained on); the rest trains.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ftdist.data.tokenize import IGNORE

MASK_OPEN, MASK_CLOSE = "⟦", "⟧"


def build_card(config, tokenizer, tokenized, skipped: Counter, splits: dict, train_index, seconds: float) -> dict:
    """Numbers per split, counts of what was cut, dropped or skipped, and three marked-up samples."""
    card = {
        "recipe": config.data.recipe,
        "path": config.data.path,
        "tokenizer": config.model.tokenizer_source,
        "seq_len": config.data.seq_len,
        "packing": config.data.packing,
        "truncation": config.data.truncation,
        "truncated": tokenized.truncated,
        "dropped": dict(tokenized.dropped),
        "skipped": dict(skipped),
        "seconds": round(seconds, 3),
        "splits": {},
    }
    lengths = np.array([len(ids) - 1 for ids, _ in tokenized.examples])
    for name, arrays in splits.items():
        labels = arrays["labels"]
        rows, width = labels.shape
        real = _real_tokens(arrays)
        card["splits"][name] = {
            "sequences": rows,
            "tokens": real,
            "padding_share": round(1 - real / max(1, rows * width), 4),
            "label_token_share": round(int((labels != IGNORE).sum()) / max(1, real), 4),
        }
    card["splits"]["train"]["examples"] = len(train_index)
    card["splits"]["val"]["examples"] = len(tokenized.examples) - len(train_index)
    card["examples"] = len(tokenized.examples)
    card["tokens"] = int(lengths.sum() + len(lengths))
    card["samples"] = [marked(tokenizer, *tokenized.examples[i]) for i in list(train_index[:3])]
    return card


def _real_tokens(arrays: dict) -> int:
    """Positions that belong to an example: everything before the trailing padding block of each row."""
    positions, labels = arrays["position_ids"], arrays["labels"]
    total = 0
    for row_positions, row_labels in zip(positions, labels, strict=True):
        starts = np.flatnonzero(row_positions == 0)
        last = starts[-1]
        # The last block is padding when none of its labels count (a real example always has a trained token).
        total += last if last > 0 and (row_labels[last:] == IGNORE).all() else len(row_positions)
    return int(total)


def marked(tokenizer, ids: np.ndarray, labels: np.ndarray) -> str:
    """The example's text with its masked spans wrapped in ⟦ ⟧."""
    parts, run, masked = [], [], None
    for token, label in zip(ids.tolist(), labels.tolist(), strict=True):
        is_masked = label == IGNORE
        if masked is not None and is_masked != masked:
            parts.append(_wrap(tokenizer.decode(run), masked))
            run = []
        run.append(token)
        masked = is_masked
    if run:
        parts.append(_wrap(tokenizer.decode(run), masked))
    return "".join(parts)


def _wrap(text: str, masked: bool) -> str:
    return f"{MASK_OPEN}{text}{MASK_CLOSE}" if masked else text


def render_card(card: dict, folder, cache_hit: bool) -> str:
    """The card as text for the terminal."""
    lines = [
        f"data card: recipe {card['recipe']} on {card['path']} ({'cache hit; ' if cache_hit else ''}prepared in "
        f"{card['seconds']} s) -> {folder}",
        f"  tokenizer {card['tokenizer']}, seq_len {card['seq_len']}, packing {'on' if card['packing'] else 'off'}",
        f"  examples {card['examples']:,}, tokens {card['tokens']:,}, truncated {card['truncated']:,} "
        f"(truncation: {card['truncation']})",
    ]
    for reason, count in {**card["dropped"], **card["skipped"]}.items():
        lines.append(f"  left out: {count:,} x {reason}")
    for name, split in card["splits"].items():
        lines.append(
            f"  {name:5s}: {split['examples']:,} examples, {split['sequences']:,} sequences, {split['tokens']:,} "
            f"tokens, padding {100 * split['padding_share']:.1f}%, label tokens {100 * split['label_token_share']:.1f}%"
        )
    lines.append(f"  samples ({MASK_OPEN}masked{MASK_CLOSE} = not trained on):")
    for number, sample in enumerate(card["samples"], 1):
        text = sample if len(sample) <= 700 else f"{sample[:300]} … {sample[-400:]}"  # keep the trained end
        lines.append(f"  [{number}] " + text.replace("\n", "\n      "))
    return "\n".join(lines)
