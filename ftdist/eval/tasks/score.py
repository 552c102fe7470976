"""`score`: generate a response to each prompt and score (prompt, response) with a reward model.

The GPT-2 dialogue study scored 50 generations with an OpenAssistant DeBERTa reward model. Any local
`AutoModelForSequenceClassification` folder works: the pair is encoded as the tokenizer's text pair and the
first logit is the score (reward models have one output; a classifier's first class is used otherwise).
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from ftdist.errors import FtdistError
from ftdist.eval.tasks.base import Row, mean
from ftdist.eval.tasks.questions import QuestionsTask


class RewardScorer:
    """Scores (prompt, response) pairs with a sequence-classification model from a local folder."""

    def __init__(self, folder: str | Path, device: torch.device) -> None:
        if not (Path(folder) / "config.json").exists():
            raise FtdistError(
                f"reward_model={folder} is not a local model folder (no config.json); point it at a saved "
                "AutoModelForSequenceClassification, e.g. an OpenAssistant reward model downloaded beforehand"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).to(device).eval()
        self.device = device

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        inputs = self.tokenizer(prompts, responses, padding=True, truncation=True, return_tensors="pt").to(self.device)
        logits = self.model(**inputs).logits  # (B, num_labels)
        return logits[:, 0].float().tolist()


class ScoreTask(QuestionsTask):
    name = "score"

    def items(self):
        if not self.config.reward_model:
            raise FtdistError("task score needs a reward model: --reward-model FOLDER (reward_model: in eval.tasks)")
        self.scorer = RewardScorer(self.config.reward_model, self.context.device)
        return super().items()

    def run_batch(self, items):
        responses = self.generate(items)
        scores = self.scorer.score([item["question"] for item in items], responses)
        return [{**item, "response": r, "reward": s} for item, r, s in zip(items, responses, scores)]

    def summarize(self, rows: list[Row]) -> dict[str, float]:
        rewards = [row["reward"] for row in rows]
        average = mean(rewards)
        spread = mean([(r - average) ** 2 for r in rewards]) ** 0.5
        return {
            "mean_reward": average,
            "reward_std": spread,
            "mean_response_chars": mean([len(r["response"]) for r in rows]),
        }
