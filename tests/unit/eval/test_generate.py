"""`ftdist generate` continues a prompt from a run folder, reproducibly for a fixed seed."""

from __future__ import annotations

import ftdist
from ftdist.cli import main


def test_generate_from_run_folder(tiny_config, tmp_path, capsys):
    ftdist.train(tiny_config, ["train.max_steps=20"])
    capsys.readouterr()  # the run's own log lines
    run = str(tmp_path / "run")
    assert main(["generate", run, "--prompt", "SELECT COUNT", "--max-new-tokens", "40", "--seed", "3"]) == 0
    first = capsys.readouterr().out.rstrip("\n")
    assert first.startswith("SELECT COUNT") and len(first) == len("SELECT COUNT") + 40  # char-level: 1 token = 1 char
    assert main(["generate", run, "--prompt", "SELECT COUNT", "--max-new-tokens", "40", "--seed", "3"]) == 0
    assert capsys.readouterr().out.rstrip("\n") == first
    # longer than the model's 16-token context: the window slides
    assert main(["generate", run, "--prompt", "SELECT", "--max-new-tokens", "50", "--temperature", "0"]) == 0
    assert len(capsys.readouterr().out.rstrip("\n")) == 56


def test_generate_rejects_unknown_folder(tmp_path, capsys):
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 2
    assert "neither a run folder" in capsys.readouterr().err
