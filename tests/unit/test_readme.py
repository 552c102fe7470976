"""README.md stays true: its CI blocks exist, and every `ftdist` command it shows parses and names real files."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import REPO
from ftdist.cli import build_parser

README = (REPO / "README.md").read_text()
BLOCKS = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
COMMANDS = [line.strip() for block in BLOCKS for line in block.splitlines() if line.strip().startswith("ftdist ")]


def test_ci_blocks_are_present_and_ci_reads_them():
    assert "<!-- ci:install -->" in README and "<!-- ci:test -->" in README
    ci = (REPO / ".ci" / "run").read_text()
    assert "readme_block install" in ci and "readme_block test" in ci


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses_and_its_files_exist(command):
    words = shlex.split(command.split("#")[0])[1:]
    args = build_parser().parse_args(words)
    for word in words:
        if word.endswith((".yaml", ".yml", ".json", ".sh")):
            assert (REPO / word).exists(), f"README mentions {word}, which does not exist"
    assert args.command
