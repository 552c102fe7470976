"""The GPU suite's smallest section on a real GPU: FSDP2 full fine-tuning in bf16 on one device trains, and the
suite reports its speed and its measured peak beside the planner's. CI has no GPU: this skips there, saying so
(nothing here is mocked; where CUDA exists it runs for real)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)"),
]
SUITE = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_suite.py"


def test_the_smallest_gpu_suite_section_trains_and_reports_its_peak() -> None:
    command = [sys.executable, str(SUITE), "--sections", "fsdp_full_bf16"]
    command += ["--steps", "4", "--warmup", "1", "--seq", "256", "--batch", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=True)
    report = json.loads(done.stdout)
    section = report["fsdp_full_bf16"]
    assert "error" not in section, section
    assert section["tokens_per_s"] > 0 and section["max_memory_allocated_bytes"] > 0
    assert section["losses"][-1] < section["losses"][0]  # it trained
