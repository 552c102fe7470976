"""The data card of the `preference` recipe: pairs (or unpaired examples with their desirable share), the
mean prompt and response lengths in tokens, and samples showing each sequence's mask."""

from __future__ import annotations

from collections import Counter

import numpy as np

from ftdist.data.card import CardBuilder, marked, real_tokens
from ftdist.data.preference_rows import row_kind, sequence_prefixes
from ftdist.data.tokenize import IGNORE
from ftdist.data.tokenize_preference import TokenizedPreference


class PreferenceCard(CardBuilder):
    """`CardBuilder` for preference rows: an example is a record; a row holds all of its sequences."""

    def __init__(self, config, tokenizer, workers: int) -> None:
        super().__init__(config, tokenizer, workers)
        self.layout = "pairs"
        self.prompt_tokens = self.desirable = 0
        self.response_tokens = [0, 0]

    COUNTS = (*CardBuilder.COUNTS, "prompt_tokens", "desirable")

    def state(self) -> dict:
        return {**super().state(), "layout": self.layout, "response_tokens": self.response_tokens}

    def absorb(self, state: dict) -> None:
        super().absorb(state)
        if state["examples"]:
            self.layout = state["layout"]
        self.response_tokens = [a + b for a, b in zip(self.response_tokens, state["response_tokens"], strict=True)]

    def add_examples(self, examples: list[TokenizedPreference], train_index: np.ndarray) -> None:
        self.windows += 1
        self.examples += len(examples)
        self.layout = "pairs" if examples[0].desirable is None else "unpaired"
        for item in examples:
            self.tokens += sum(len(ids) for ids, _ in item.sequences.values())
            self.prompt_tokens += item.prompt_tokens
            for number, count in enumerate(item.response_tokens):
                self.response_tokens[number] += count
            self.desirable += item.desirable or 0
        self.splits["train"]["examples"] += len(train_index)
        self.splits["val"]["examples"] += len(examples) - len(train_index)
        for i in train_index[: 3 - len(self.samples)]:
            self.samples.append(_sample(self.tokenizer, examples[i]))

    def add_rows(self, split: str, arrays: dict[str, np.ndarray]) -> None:
        numbers = self.splits[split]
        for prefix in sequence_prefixes(row_kind(arrays)):
            labels = arrays[f"{prefix}labels"]
            numbers["sequences"] += len(labels)
            numbers["tokens"] += real_tokens({"position_ids": arrays[f"{prefix}position_ids"], "labels": labels})
            numbers["labels"] += int((labels != IGNORE).sum())

    def finish(self, skipped: Counter, shards: dict[str, int], seconds: float) -> dict:
        card = super().finish(skipped, shards, seconds)
        card["packing"] = False  # each sequence alone, whatever data.packing says
        card.pop("pack_window")
        count = max(1, self.examples)
        summary = {"layout": self.layout, "mean_prompt_tokens": round(self.prompt_tokens / count, 1)}
        if self.layout == "pairs":
            summary["pairs"] = self.examples
            summary["mean_chosen_tokens"] = round(self.response_tokens[0] / count, 1)
            summary["mean_rejected_tokens"] = round(self.response_tokens[1] / count, 1)
        else:
            summary["examples"] = self.examples
            summary["mean_completion_tokens"] = round(self.response_tokens[0] / count, 1)
            summary["desirable_share"] = round(self.desirable / count, 4)
        card["preference"] = summary
        return card


def _sample(tokenizer, item: TokenizedPreference) -> str:
    """Each sequence of a record, marked, on its own line (the KL sequence is left out: it is derived)."""
    if item.desirable is not None:
        ids, labels = item.sequences[""]
        return f"({'desirable' if item.desirable else 'undesirable'}) {marked(tokenizer, ids, labels)}"
    return "\n".join(f"{name}: {_short(marked(tokenizer, *item.sequences[name]))}" for name in ("chosen", "rejected"))


def _short(text: str, head: int = 100, tail: int = 230) -> str:
    """One sequence cut to its start and its trained end, so that a pair's two sequences both show within the
    card's 700 characters per sample (the card would otherwise cut the pair as one text: chosen's start and
    rejected's end under the heading `chosen`)."""
    return text if len(text) <= head + tail + 3 else f"{text[:head]} … {text[-tail:]}"


def preference_lines(card: dict) -> list[str]:
    """The card's preference summary as lines for the terminal."""
    summary = card["preference"]
    if summary["layout"] == "pairs":
        return [
            f"  pairs {summary['pairs']:,}: mean tokens prompt {summary['mean_prompt_tokens']}, chosen "
            f"{summary['mean_chosen_tokens']}, rejected {summary['mean_rejected_tokens']}; each response its own "
            "sequence, never packed"
        ]
    return [
        f"  unpaired examples {summary['examples']:,}, desirable {100 * summary['desirable_share']:.1f}%: mean "
        f"tokens prompt {summary['mean_prompt_tokens']}, completion {summary['mean_completion_tokens']}; each "
        "with a KL sequence (its prompt, the previous example's completion), never packed"
    ]
