"""What the login node checks before a job queues (issue 24): every command's --help, one CONFIG [key=value]
grammar, the files a config names, the device rules that preflight and the planner share, and the Slurm dry
run. All in-process, no model, no torch work."""

from __future__ import annotations

import argparse
import json

import pytest

from conftest import REPO
from ftdist.cli import build_parser, main
from ftdist.config import load_config
from ftdist.errors import ConfigError
from ftdist.preflight import World, preflight

CONFIGS = REPO / "cluster_configs"
TINY = str(CONFIGS / "tiny_llama_full.yaml")


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from _commands(sub, (*prefix, name))


def test_every_command_and_subcommand_prints_its_help(capsys):
    commands = list(_commands(build_parser()))
    assert ("launch", "slurm") in commands and ("validate",) in commands
    for words in commands:
        with pytest.raises(SystemExit) as done:
            main([*words, "--help"])
        assert done.value.code == 0, words
        assert "usage: ftdist " + " ".join(words) in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ["launch", "slurm", "--nodes", "2", TINY, "train.max_steps=9", "--dry-run", "strategy=ddp"],
        ["launch", "slurm", "train.max_steps=9", "--dry-run", TINY, "--nodes=2", "strategy=ddp"],
        ["validate", "strategy=ddp", TINY, "--set", "train.max_steps=9"],
        ["plan", TINY, "--gpu", "cpu", "train.max_steps=9", "strategy=ddp"],
    ],
)
def test_config_and_overrides_go_in_any_order_with_the_flags(argv):
    args = build_parser().parse_args(argv)
    assert args.config in (TINY, [TINY])
    assert sorted(args.overrides) == ["strategy=ddp", "train.max_steps=9"]


def test_validate_names_each_missing_file_with_its_line_and_fix(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "mine.yaml"
    config.write_text(
        "method: lora\nmodel:\n  path: llama_7b\ndata:\n  path: data/corpus.txt\n"
        "eval:\n  tasks:\n    - {task: qa, path: 'builtin:bibleqa_dev.jsonl', prefix_file: prefix.txt}\n"
    )
    assert main(["validate", str(config)]) == 2
    err = capsys.readouterr().err
    assert f"{config} line 5: data.path=data/corpus.txt: no such file or folder here" in err
    assert "(on the command line: data.path=PATH)" in err
    assert "line 3: model.path=llama_7b is neither a folder here nor a Hugging Face Hub id (namespace/name" in err
    assert "eval.tasks[0].prefix_file=prefix.txt: no such file" in err and "bibleqa_dev" not in err
    assert main(["validate", str(config), "--schema-only"]) == 0
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus.txt").write_text("text")
    (tmp_path / "prefix.txt").write_text("Q: A:")
    assert main(["validate", str(config), "model.path=meta-llama/Llama-2-7b-hf"]) == 0


def test_a_missing_local_model_folder_is_refused_by_every_launchers_preflight(tmp_path, capsys):
    argv = ["launch", "slurm", TINY, "method=full", f"model.path={tmp_path}/no/model", "model.scratch=null"]
    assert main(argv) == 2
    assert f"model.path={tmp_path}/no/model: no such file or folder here" in capsys.readouterr().err


def test_device_rules_are_the_same_for_preflight_and_the_planner(capsys):
    qlora = load_config(CONFIGS / "qlora_llama2_7b_sql.yaml")
    with pytest.raises(ConfigError, match="qlora needs bitsandbytes, which has no MPS backend"):
        preflight(qlora, World(1, "mps"))
    with pytest.raises(ConfigError, match="paged_adamw_8bit pages optimizer state through CUDA"):
        preflight(qlora, World(1, "cpu"))
    with pytest.raises(ConfigError, match="bf16 is not supported by T4 16GB"):
        preflight(load_config(CONFIGS / "llama2_7b_full_zero3.yaml"), World(8, "cuda", gpu="t4"))
    preflight(load_config(CONFIGS / "llama2_7b_full_zero3.yaml"), World(8, "cuda", gpu="a100-80"))

    def plan(config: str, *flags: str) -> dict:
        main(["plan", str(CONFIGS / config), "--json", *flags])
        return json.loads(capsys.readouterr().out)

    m2 = plan("llama2_7b_full_zero3.yaml", "--gpu", "m2-24", "precision=fp32")
    advice = " ".join(m2["what_would_fit"])
    assert "qlora" not in advice and "Apple M2 24GB" not in advice.split("cannot run it")[-1]
    assert not any(row["fits"] for row in m2["strategies"] if row["world"] > 1)
    t4 = plan("llama2_7b_full_zero3.yaml", "--gpu", "t4", "--gpus", "8")
    assert t4["recommended"] is None
    assert all("bf16 is not supported by T4" in row["why_not"] for row in t4["strategies"])


def test_slurm_dry_run_shows_command_verdict_plan_and_sized_memory(capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    argv = ["launch", "slurm", TINY, "--dry-run", "--gpus-per-node", "2", "--gpu", "a10g", "strategy=ddp"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"each task runs: ftdist train {TINY} strategy=ddp" in out
    assert "# preflight: ok" in out and "# plan: ddp on 2 x A10G" in out
    assert "#SBATCH --mem=" in out and "wckey" not in out
    assert main([*argv, "--mem-gb", "0"]) == 0
    assert "--mem=" not in capsys.readouterr().out.split("#!/bin/bash")[1]
    assert main([*argv, "--mem-gb", "64", "--wckey", "proj"]) == 0
    script = capsys.readouterr().out
    assert "#SBATCH --mem=64G" in script and "#SBATCH --wckey=proj" in script
