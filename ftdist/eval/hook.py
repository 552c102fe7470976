"""`eval:` in a run config: the base model before training and the tuned one after, with the same settings.

The trainer calls `RunEval.before_training` once in setup and `RunEval.after_training` once in finish; nothing
in the loop knows evaluation exists. Both evaluations run on every rank (items split across ranks) from model
folders on disk: the base folder the run starts from, and the run's `final/`. Loading from disk, not the
wrapped training model, is what makes sharded strategies (FSDP, ZeRO-3) and adapters work the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ftdist.config import RunConfig
from ftdist.distributed.env import DistEnv
from ftdist.eval.api import Results, evaluate
from ftdist.eval.results import write_results
from ftdist.run_folder import RunFolder, load_base, load_trained

BASE, TUNED = "base", "tuned"


class RunEval:
    """Writes `eval/base.json` and `eval/tuned.json` (+ `.jsonl` rows) into the run folder."""

    def __init__(self, config: RunConfig, run_dir: Path, env: DistEnv, device: torch.device) -> None:
        self.config, self.env, self.device = config, env, device
        self.folder = RunFolder(run_dir).eval
        self.enabled = bool(config.eval.tasks)

    def before_training(self, tokenizer) -> None:
        """Evaluate the base once (a resumed run keeps the file it wrote the first time)."""
        from ftdist.models import base_folder

        if not (self.enabled and self.config.eval.base) or (self.folder / f"{BASE}.json").exists():
            return
        folder = base_folder(self.config, tokenizer)
        if folder is None:  # method: pretrain starts from random weights: there is no base to compare with
            return
        # Loaded as `final/`'s adapters will find it: a QLoRA base 4-bit quantized then de-quantized, so the
        # comparison measures the training, not the quantization.
        model = load_base(Path(folder), self.config).to(self.device)
        self._run(BASE, str(folder), model, tokenizer)
        del model

    def after_training(self, final_dir: Path) -> str:
        """Evaluate `final/`; returns the side-by-side summary for the end-of-run report ('' when disabled)."""
        if not self.enabled:
            return ""
        model, tokenizer, _ = load_trained(final_dir, self.device)
        self._run(TUNED, str(final_dir), model, tokenizer)
        return side_by_side(self.folder) if self.env.is_main else ""

    def _run(self, stage: str, source: str, model, tokenizer) -> Results:
        results = evaluate(
            model,
            tokenizer,
            self.config.eval.tasks,
            self.device,
            self.folder.parent,
            self.env.rank,
            self.env.world_size,
            progress=self.config.tracking.progress,
            run_config=self.config,
        )
        if self.env.is_main:
            write_results(self.folder / stage, source, results)
        return results


def side_by_side(folder: Path) -> str:
    """A small table: each task's metrics for base and tuned, and tuned minus base."""
    tuned = json.loads((folder / f"{TUNED}.json").read_text())["results"]
    base_file = folder / f"{BASE}.json"
    base = json.loads(base_file.read_text())["results"] if base_file.exists() else {}
    lines = [f"{'eval':<28}{'base':>12}{'tuned':>12}{'change':>12}"]
    for label, result in tuned.items():
        for metric, value in result["metrics"].items():
            before = base.get(label, {}).get("metrics", {}).get(metric)
            change = f"{value - before:+12.4f}" if before is not None else f"{'':>12}"
            shown = f"{before:12.4f}" if before is not None else f"{'-':>12}"
            lines.append(f"{label + ' ' + metric:<28}{shown}{value:12.4f}{change}")
    return "\n".join(lines)
