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
    """Scores (prompt, response) pairs with a sequence-classification model: a local folder, or a run of
    `method: reward` (its final model, adapters included), which reads each pair as it trained: the prompt's
    tokens, the response's, then EOS."""

    def __init__(self, folder: str | Path, device: torch.device) -> None:
        from ftdist.run_folder import RunFolder, load_trained, resolve_model_folder, run_config_for

        self.device = device
        config = None
        if RunFolder.of(folder) is not None or (Path(folder) / "final").exists():
            folder = resolve_model_folder(folder)
            config = run_config_for(Path(folder))
        self.trained_here = config is not None and config.method.objective == "reward"
        self.add_eos = bool(config and config.data.add_eos)
        if self.trained_here:
            self.model, self.tokenizer, _ = load_trained(folder, device)
            return
        if not (Path(folder) / "config.json").exists():
            raise FtdistError(
                f"reward_model={folder} is not a local model folder (no config.json) nor a run of method: reward; "
                "point it at a saved AutoModelForSequenceClassification, e.g. an OpenAssistant reward model "
                "downloaded beforehand, or at a run trained with method: reward"
            )
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder, use_safetensors=True).to(device).eval()

    @torch.no_grad()
    def score(self, prompts: list[str], responses: list[str]) -> list[float]:
        if self.trained_here:
            return [self._score_as_trained(prompt, response) for prompt, response in zip(prompts, responses)]
        inputs = self.tokenizer(prompts, responses, padding=True, truncation=True, return_tensors="pt").to(self.device)
        logits = self.model(**inputs).logits  # (B, num_labels)
        return logits[:, 0].float().tolist()

    def _score_as_trained(self, prompt: str, response: str) -> float:
        from ftdist.data.tokenize import encode

        prompt_ids, response_ids = encode(self.tokenizer, [prompt, response])
        eos = [self.tokenizer.eos_token_id] if self.add_eos and self.tokenizer.eos_token_id is not None else []
        ids = torch.tensor([prompt_ids + response_ids + eos], device=self.device)
        return float(self.model(input_ids=ids).logits[0, 0])


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
