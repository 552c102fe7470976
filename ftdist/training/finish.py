"""What a finished run writes besides its model: plots and samples from `eval.prompts`."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from ftdist.config import RunConfig
from ftdist.generate import generate
from ftdist.run_folder import RunFolder
from ftdist.training.plots import write_plots


def write_run_artifacts(
    config: RunConfig, run_dir: Path, model: nn.Module, tokenizer: PreTrainedTokenizerBase, device: torch.device
) -> None:
    if config.tracking.plots:
        write_plots(run_dir)
    if config.eval.prompts:
        model.eval()
        samples = [generate(model, tokenizer, prompt, config.generation, device) for prompt in config.eval.prompts]
        RunFolder(run_dir).samples.write_text(
            "\n\n".join(f"### {p}\n{s}" for p, s in zip(config.eval.prompts, samples))
        )
        model.train()
