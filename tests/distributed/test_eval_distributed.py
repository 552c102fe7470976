"""`ftdist eval` under torchrun with 2 gloo processes: items split across ranks, gathered on rank 0, and the
result equal to one process's. Also a 2-rank training run whose `eval:` section runs on both ranks."""

from __future__ import annotations

import json
import sys

import pytest
from eval_helpers import save_tiny_lm, write_jsonl

from conftest import REPO, run_cli
from ftdist.distributed.process_group import free_port

pytestmark = pytest.mark.distributed


def _torchrun(*args: str):
    import os
    import subprocess

    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
               str(free_port()), "-m", "ftdist", *args]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, env=env)


def _load(out):
    summary = json.loads(out.with_suffix(".json").read_text())["results"]
    rows = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    return summary, rows


def test_two_ranks_equal_one(tmp_path):
    model = save_tiny_lm(tmp_path / "lm")
    common = ["--task", "qa", "--data", "builtin:bibleqa_dev.jsonl", "--limit", "11", "--batch-size", "2",
              "--max-new-tokens", "6", "--no-progress"]  # fmt: skip
    one = run_cli("eval", str(model), *common, "--out", str(tmp_path / "one"))
    assert one.returncode == 0, one.stderr[-3000:]
    two = _torchrun("eval", str(model), *common, "--out", str(tmp_path / "two"))
    assert two.returncode == 0, two.stderr[-3000:]
    (summary_one, rows_one), (summary_two, rows_two) = _load(tmp_path / "one"), _load(tmp_path / "two")
    assert summary_two["qa"]["world_size"] == 2 and summary_two["qa"]["n"] == 11
    assert summary_two["qa"]["metrics"] == summary_one["qa"]["metrics"]
    assert [(r["index"], r["response"]) for r in rows_two] == [(r["index"], r["response"]) for r in rows_one]


@pytest.mark.slow
def test_run_eval_section_under_two_ranks(tmp_path):
    base = save_tiny_lm(tmp_path / "base")
    qa = write_jsonl(tmp_path / "qa.jsonl", [{"question": "SELECT name", "answer": "FROM"}] * 5)
    config = tmp_path / "run.yaml"
    config.write_text(
        f"name: ddp_eval\noutput_dir: {tmp_path / 'run'}\nmethod: full\nstrategy: ddp\nmodel: {{path: {base}}}\n"
        "data: {path: 'builtin:tiny_sql_corpus.txt', seq_len: 32}\n"
        "train: {max_steps: 6, micro_batch_size: 4, eval_every: 0, log_every: 3}\ncheckpoint: {every: 0}\n"
        "tracking: {progress: false}\n"
        f"eval: {{tasks: [{{task: qa, path: '{qa}', max_new_tokens: 4, batch_size: 2}}]}}\n"
    )
    result = run_cli("launch", "local", "--nproc", "2", str(config), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    for stage in ("base", "tuned"):
        summary = json.loads((tmp_path / "run" / "eval" / f"{stage}.json").read_text())["results"]["qa"]
        assert summary["world_size"] == 2 and summary["n"] == 5
    assert "qa lenient" in result.stderr + result.stdout
