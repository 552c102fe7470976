"""The tiny SQL GPT paper's table: after 5,000 iterations train <= 0.95 and val <= 1.25 (paper: 0.8993, 1.2195)."""

from __future__ import annotations

import pytest

import ftdist
from conftest import REPO


@pytest.mark.slow
def test_tiny_sql_gpt_reproduces_paper(tmp_path):
    result = ftdist.train(
        REPO / "cluster_configs" / "tiny_sql_gpt.yaml", [f"output_dir={tmp_path / 'run'}", "tracking.progress=false"]
    )
    print(f"tiny SQL GPT after {result.step} steps: {result.metrics}")
    assert result.step == 5000
    assert result.metrics["train_loss"] <= 0.95
    assert result.metrics["val_loss"] <= 1.25
