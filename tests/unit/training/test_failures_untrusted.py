"""Folders someone else made: pickle-only weights are refused with the reason and the conversion command (and a
malicious pickle never runs), custom code named by `auto_map` is not run and said so once, and export copies
only safetensors, config and tokenizer files."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, GPT2Config

from conftest import run_cli
from ftdist.export import export
from ftdist.models import load_pretrained
from ftdist.models.char_tokenizer import build_char_tokenizer


class Payload:
    """Unpickling this runs a shell command that creates a marker file: the side effect the tests look for."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def model_folder(path: Path, weights: bool = True) -> Path:
    model = AutoModelForCausalLM.from_config(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=40, n_positions=32))
    model.save_pretrained(path, safe_serialization=True)
    if not weights:
        (path / "model.safetensors").unlink()
    build_char_tokenizer("SELECT * FROM t;").save_pretrained(path)
    return path


def test_pickle_only_folder_is_refused_and_never_unpickled(tmp_path):
    folder = model_folder(tmp_path / "legacy", weights=False)
    marker = tmp_path / "pwned"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Payload(marker)))
    for command in (["generate", str(folder), "--prompt", "SELECT"], ["export", str(folder)]):
        result = run_cli(*command)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        said = result.stderr
        assert "holds its weights only as pickle (pytorch_model.bin), and ftdist loads safetensors only" in said
        assert "save_pretrained(" in result.stderr and f"{folder}-safetensors" in result.stderr
    assert not marker.exists(), "the pickle ran"
    assert not (tmp_path / "export").exists()


def test_auto_map_without_trust_remote_code_warns_once_and_runs_no_code(tmp_path):
    folder = model_folder(tmp_path / "custom")
    marker = tmp_path / "imported"
    (folder / "modeling_custom.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_custom.CustomModel"}
    (folder / "config.json").write_text(json.dumps(config))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            model = load_pretrained(str(folder))
    said = [str(w.message) for w in caught if "auto_map" in str(w.message)]
    assert len(said) == 1, said
    assert "modeling_custom.CustomModel" in said[0] and "model.trust_remote_code=true" in said[0]
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert not marker.exists(), "the custom code ran"


def test_export_of_a_model_folder_writes_only_safetensors_config_and_tokenizer(tmp_path):
    folder = model_folder(tmp_path / "plain")
    (folder / "pytorch_model.bin").write_bytes(b"not copied")
    (folder / "modeling_custom.py").write_text("raise SystemExit\n")
    (folder / "README.md").write_text("card")
    target = export(folder, tmp_path / "out")
    names = sorted(p.name for p in target.iterdir())
    assert "model.safetensors" in names and "config.json" in names and "tokenizer_config.json" in names
    assert not [n for n in names if n.endswith((".bin", ".py", ".md"))], names
    AutoModelForCausalLM.from_pretrained(target, use_safetensors=True)


@pytest.mark.parametrize("name", ["adapter_model.bin", "model.pt"])
def test_other_pickles_are_refused_too(tmp_path, name):
    from ftdist.errors import FtdistError
    from ftdist.models import check_safetensors_folder

    folder = model_folder(tmp_path / "legacy", weights=False)
    (folder / name).write_bytes(b"\x80\x04N.")
    with pytest.raises(FtdistError, match=rf"only as pickle \({name}\)"):
        check_safetensors_folder(folder)
