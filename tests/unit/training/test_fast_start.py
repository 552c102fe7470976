"""A run imports only what it uses: a single-device run (training to the end, with its checkpoints and final/)
loads neither DeepSpeed, Ray, bitsandbytes nor peft; each of those costs seconds at every process start."""

from __future__ import annotations

import json
import subprocess
import sys

from conftest import REPO, tiny_gpt_config

HEAVY = ("deepspeed", "ray", "bitsandbytes", "peft")


def test_a_single_device_run_imports_no_deepspeed_ray_bitsandbytes_or_peft(tmp_path) -> None:
    config = tiny_gpt_config(tmp_path / "run", max_steps=4, eval_every=2)
    config["checkpoint"]["every"] = 2
    code = (
        "import json, sys, ftdist\n"
        f"result = ftdist.train(json.loads({json.dumps(json.dumps(config))}))\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))\n"
        "print(result.final_dir)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, check=True
    )
    loaded, final = done.stdout.strip().splitlines()[-2:]
    assert json.loads(loaded) == [], f"a single-device run imported {loaded}"
    assert (tmp_path / "run" / "final" / "model.safetensors").exists() and final.endswith("final")
