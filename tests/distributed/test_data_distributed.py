"""Under torchrun (2 CPU processes, gloo): both ranks build the missing cache together (each its units; rank 0
seals it), both read the same cache, and the two ranks' batches together are the global batch a single process
would draw."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.distributed

WORKER = textwrap.dedent(
    """
    import json, sys, torch
    import ftdist.data.build as prep
    from ftdist.config import load_config
    from ftdist.data import build_data
    from ftdist.distributed.env import detect_env
    from ftdist.distributed.process_group import init_distributed, shutdown_distributed

    calls = []
    original = prep.build
    prep.build = lambda *args: calls.append(1) or original(*args)
    cfg = load_config(json.loads(sys.argv[1]))
    env = detect_env()
    init_distributed(env, torch.device("cpu"))
    tokenizer, data = build_data(cfg, env)
    batch = data.next_batch()["input_ids"].tolist()
    with open(f"{sys.argv[2]}/rank{env.rank}.json", "w") as out:
        json.dump({"tokenized": len(calls), "batch": batch}, out)
    shutdown_distributed()
    """
)


def test_ranks_prepare_together_and_split_the_global_batch(tmp_path: Path):
    cfg = {
        "model": {"scratch": {"family": "llama", "n_layer": 2, "n_head": 4, "n_kv_head": 2, "n_embd": 64}},
        "data": {
            "recipe": "qa",
            "path": "builtin:chatterbot_qa.jsonl",
            "seq_len": 256,
            "truncation": "drop",
            "unit_mb": 0.02,  # the file in 4 row ranges: rank 0 builds units 0 and 2, rank 1 units 1 and 3
            "cache_dir": str(tmp_path / "cache"),
        },
        "train": {"micro_batch_size": 2},
    }
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(script),
        json.dumps(cfg),
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["tokenized"] for r in ranks] == [1, 1]  # each builds its units
    (folder,) = (tmp_path / "cache").iterdir()  # nothing else: no staging folder, no note
    card = json.loads((folder / "card.json").read_text())
    assert card["ranks"] == 2 and card["units"] == 4

    from ftdist.config import load_config
    from ftdist.data.prepare import prepare
    from ftdist.data.prepared import PreparedData

    single = load_config({**cfg, "train": {"micro_batch_size": 4}})
    prepared = prepare(single)
    assert prepared.cache_hit
    want = PreparedData(prepared.splits, 4, single.seed).next_batch()["input_ids"].tolist()
    assert ranks[0]["batch"] + ranks[1]["batch"] == want
