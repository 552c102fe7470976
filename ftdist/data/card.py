"""The data card: what `ftdist prepare` made, in numbers and three decoded samples.

In the samples, text inside ⟦ ⟧ is masked (labels -100: read by the model, not trained on); the rest trains.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ftdist.data.tokenize import IGNORE

MASK_OPEN, MASK_CLOSE = "⟦", "⟧"


class CardBuilder:
    """The card's numbers, added window by window as the rows are written (nothing is kept but counts)."""

    def __init__(self, config, tokenizer, workers: int) -> None:
        self.config, self.tokenizer, self.workers = config, tokenizer, workers
        self.examples = self.tokens = self.truncated = self.windows = 0
        self.dropped: Counter = Counter()
        self.splits = {
            name: dict.fromkeys(("examples", "sequences", "tokens", "labels"), 0) for name in ("train", "val")
        }
        self.samples: list[str] = []

    def add_examples(self, examples: list[tuple[np.ndarray, np.ndarray]], train_index: np.ndarray) -> None:
        self.windows += 1
        self.examples += len(examples)
        self.tokens += sum(len(ids) for ids, _ in examples)
        self.splits["train"]["examples"] += len(train_index)
        self.splits["val"]["examples"] += len(examples) - len(train_index)
        for i in train_index[: 3 - len(self.samples)]:
            self.samples.append(marked(self.tokenizer, *examples[i]))

    def add_rows(self, split: str, arrays: dict[str, np.ndarray]) -> None:
        numbers = self.splits[split]
        numbers["sequences"] += len(arrays["labels"])
        numbers["tokens"] += real_tokens(arrays)
        numbers["labels"] += int((arrays["labels"] != IGNORE).sum())

    COUNTS = ("examples", "tokens", "truncated", "windows")  # added up over units (a subclass adds its own)

    def state(self) -> dict:
        """The numbers so far, as JSON: one unit's part of the card (`absorb` adds them up)."""
        numbers = {name: getattr(self, name) for name in self.COUNTS}
        return {**numbers, "dropped": dict(self.dropped), "splits": self.splits, "samples": self.samples}

    def absorb(self, state: dict) -> None:
        """Add one unit's `state`; units come in order, so the samples are the first units' first ones."""
        for name in self.COUNTS:
            setattr(self, name, getattr(self, name) + state[name])
        self.dropped.update(state["dropped"])
        for split, numbers in state["splits"].items():
            for key, value in numbers.items():
                self.splits[split][key] += value
        self.samples += state["samples"][: 3 - len(self.samples)]

    def finish(self, skipped: Counter, shards: dict[str, int], seconds: float) -> dict:
        data = self.config.data
        card = {
            "recipe": data.recipe,
            "path": data.path,
            "tokenizer": self.config.model.tokenizer_source,
            "seq_len": data.seq_len,
            "packing": data.packing,
            "truncation": data.truncation,
            "truncated": self.truncated,
            "dropped": dict(self.dropped),
            "skipped": dict(skipped),
            "seconds": round(seconds, 3),
            "workers": self.workers,
            "tokens_per_second": round(self.tokens / max(seconds, 1e-9)),
            "shards": shards,
            "splits": {},
        }
        rows = 0
        for name, numbers in self.splits.items():
            rows += numbers["sequences"]
            card["splits"][name] = {
                "examples": numbers["examples"],
                "sequences": numbers["sequences"],
                "tokens": numbers["tokens"],
                "padding_share": round(1 - numbers["tokens"] / max(1, numbers["sequences"] * data.seq_len), 4),
                "label_token_share": round(numbers["labels"] / max(1, numbers["tokens"]), 4),
            }
        real = sum(numbers["tokens"] for numbers in self.splits.values())
        # No packer can use fewer rows than the tokens fill; what windows cost is at most the difference.
        fewest = sum(-(-numbers["tokens"] // data.seq_len) for numbers in self.splits.values())
        card["pack_window"] = {
            "examples": data.pack_window,
            "windows": self.windows,
            "padding_share": round(1 - real / max(1, rows * data.seq_len), 4),
            "padding_share_if_every_row_full": round(1 - real / max(1, fewest * data.seq_len), 4),
        }
        card["examples"] = self.examples
        card["tokens"] = self.tokens
        card["samples"] = self.samples
        return card


def real_tokens(arrays: dict) -> int:
    """Positions that belong to an example: everything before the trailing padding block of each row.

    The last block of a row (from its last position 0) is padding when none of its labels count: a real
    example always has a trained token."""
    positions, labels = arrays["position_ids"], arrays["labels"]
    width = positions.shape[1]
    last_start = width - 1 - np.argmax((positions == 0)[:, ::-1], axis=1)  # (N,)
    trained = labels != IGNORE
    last_trained = np.where(trained.any(axis=1), width - 1 - np.argmax(trained[:, ::-1], axis=1), -1)  # (N,)
    padded = (last_start > 0) & (last_trained < last_start)
    return int(np.where(padded, last_start, width).sum())


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
    if card.get("units", 1) > 1 or card.get("ranks", 1) > 1:  # absent from cards of before units
        lines.append(f"  built as {card['units']:,} unit(s) (data.unit_mb) by {card['ranks']} rank(s)")
    if "preference" in card:
        from ftdist.data.card_preference import preference_lines  # it builds on this module

        lines += preference_lines(card)
    for reason, count in {**card["dropped"], **card["skipped"]}.items():
        lines.append(f"  left out: {count:,} x {reason}")
    window = card.get("pack_window")
    if window and card["packing"]:
        lines.append(
            f"  packed in {window['windows']:,} window(s) of {window['examples']:,} examples: padding "
            f"{100 * window['padding_share']:.1f}% (every row full: "
            f"{100 * window['padding_share_if_every_row_full']:.1f}%)"
        )
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
