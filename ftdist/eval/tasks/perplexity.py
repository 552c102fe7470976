"""`perplexity`: mean next-token loss on held-out text, in nats per token (and its exponent, perplexity).

The text is a file given with `path` (plain text, or JSONL with a `text` field), cut into non-overlapping
windows of `seq_len` + 1 tokens; without `path` it is the run's own validation split, exactly as training held
it out. Every token after a window's first counts once, so the figure does not depend on the batch size.
"""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from ftdist.data.sources import read_text
from ftdist.errors import FtdistError
from ftdist.eval.tasks.base import Row, Task
from ftdist.training.loss import IGNORE_INDEX, count_label_tokens, token_loss_sum


class PerplexityTask(Task):
    name = "perplexity"

    def items(self) -> list[dict[str, Any]]:
        windows = self._file_windows() if self.config.path else self._val_split_windows()
        return self.limited([{"id": index, **window} for index, window in enumerate(windows)])

    def _seq_len(self) -> int:
        if self.config.seq_len:
            return self.config.seq_len
        config = self.context.model.config
        window = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None) or 512
        return min(window, 512)

    def _file_windows(self) -> list[dict[str, list[int]]]:
        text = read_text(self.config.path, "perplexity path")
        if str(self.config.path).endswith(".jsonl"):
            text = "\n\n".join(json.loads(line)["text"] for line in text.splitlines() if line.strip())
        ids = self.context.tokenizer(text, add_special_tokens=False)["input_ids"]
        size = self._seq_len()
        if len(ids) < 2:
            raise FtdistError(f"perplexity path={self.config.path} has fewer than 2 tokens; give a longer text")
        return [
            {"input_ids": ids[s : s + size], "labels": ids[s + 1 : s + size + 1]}
            for s in range(0, len(ids) - 1, size)
            if len(ids[s + 1 : s + size + 1]) > 0
        ]

    def _val_split_windows(self) -> list[dict[str, list[int]]]:
        """The run's `val` split, read through the same data code that held it out during training."""
        from ftdist.data import build_data
        from ftdist.distributed.env import DistEnv
        from ftdist.run_folder import run_config_for

        config = self.context.run_config
        if config is None and self.context.run_dir is not None:
            config = run_config_for(self.context.run_dir)
        if config is None:
            raise FtdistError(
                "task perplexity without --data needs a run folder (its config.yaml names the val split); "
                "pass a run folder or --data held_out.txt"
            )
        _, data = build_data(config, DistEnv())
        split = data.splits.get("val")
        if split is None or len(split) == 0:
            raise FtdistError("the run has no val split (data.val_fraction is 0); pass --data held_out.txt")
        if isinstance(split, torch.Tensor):  # stream recipe: one long token stream
            ids, size = split.tolist(), config.data.seq_len
            return [
                {"input_ids": ids[s : s + size], "labels": ids[s + 1 : s + size + 1]}
                for s in range(0, len(ids) - size, size)
            ]
        rows = len(split["input_ids"])  # prepared recipes: packed or padded rows, labels already aligned
        return [
            {"input_ids": split["input_ids"][r].tolist(), "labels": split["labels"][r].tolist()} for r in range(rows)
        ]

    def size(self, item: dict[str, Any]) -> int:
        return len(item["input_ids"])

    @torch.no_grad()
    def run_batch(self, items: list[dict[str, Any]]) -> list[Row]:
        rows = []
        for item in items:  # one window per forward pass: windows differ in length only at the end of a file
            labels = item["labels"] + [IGNORE_INDEX] * (len(item["input_ids"]) - len(item["labels"]))
            batch = {"input_ids": torch.tensor([item["input_ids"]]), "labels": torch.tensor([labels])}
            nats = float(token_loss_sum(self.context.model, batch, self.context.device))
            rows.append({"id": item["id"], "tokens": count_label_tokens(batch), "nats": nats})
        return rows

    def summarize(self, rows: list[Row]) -> dict[str, float]:
        tokens = sum(row["tokens"] for row in rows)
        nats = sum(row["nats"] for row in rows) / max(1, tokens)
        return {"tokens": float(tokens), "nats_per_token": nats, "perplexity": math.exp(min(nats, 700))}
