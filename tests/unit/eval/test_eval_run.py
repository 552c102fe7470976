"""`eval:` in a run config (base before, tuned after, side by side) and `ftdist compare` on the runs it wrote,
opened in headless Chromium with the network cut off."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest
from eval_helpers import save_tiny_lm, write_jsonl

import ftdist
from ftdist.cli import main

QA = [{"question": "SELECT name", "answer": "FROM"}, {"question": "SELECT count(*)", "answer": "FROM singer"},
      {"question": "SELECT *", "answer": "FROM"}]  # fmt: skip


def _run_config(base: Path, run_dir: Path, qa: Path, method: str) -> dict:
    return {
        "name": run_dir.name,
        "output_dir": str(run_dir),
        "seed": 7,
        "method": method,
        "model": {"path": str(base)},
        "data": {"path": "builtin:tiny_sql_corpus.txt", "seq_len": 32},
        "optim": {"name": "adamw", "lr": 3e-3},
        "train": {"max_steps": 12, "micro_batch_size": 8, "eval_every": 6, "eval_batches": 2, "log_every": 3},
        "checkpoint": {"every": 6},  # step-6 and step-12 (every: 0 writes none)
        "tracking": {"progress": False},
        "eval": {
            "tasks": [
                {"task": "qa", "path": str(qa), "max_new_tokens": 6, "stop": ["\n"]},
                {"task": "perplexity", "limit": 4},
            ]
        },  # fmt: skip
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A full fine-tune and a LoRA run of the same tiny base, each with base and tuned evaluations."""
    root = tmp_path_factory.mktemp("eval-runs")
    base = save_tiny_lm(root / "base")
    qa = write_jsonl(root / "qa.jsonl", QA)
    folders = {}
    for method in ("full", "lora"):
        folders[method] = root / method
        ftdist.train(_run_config(base, folders[method], qa, method))
    return root, folders


def test_run_writes_base_and_tuned_with_the_same_settings(runs, capsys):
    root, folders = runs
    for method, run in folders.items():
        base = json.loads((run / "eval" / "base.json").read_text())
        tuned = json.loads((run / "eval" / "tuned.json").read_text())
        assert set(base["results"]) == set(tuned["results"]) == {"qa", "perplexity"}
        for label in ("qa", "perplexity"):
            assert base["results"][label]["settings"] == tuned["results"][label]["settings"]
        assert base["model"] == str((root / "base").resolve())
        assert tuned["results"]["perplexity"]["metrics"] != base["results"]["perplexity"]["metrics"], method
        rows = [json.loads(line) for line in (run / "eval" / "tuned.jsonl").read_text().splitlines()]
        assert sorted({r["task"] for r in rows}) == ["perplexity", "qa"] and len(rows) == 3 + 4


def test_base_result_equals_ftdist_eval_on_the_base_folder(runs, tmp_path):
    root, folders = runs
    out = tmp_path / "base-qa"
    assert main(["eval", str(root / "base"), "--task", "qa", "--data", str(root / "qa.jsonl"),
                 "--max-new-tokens", "6", "--out", str(out), "--no-progress"]) == 0  # fmt: skip
    by_command = [json.loads(line)["response"] for line in out.with_suffix(".jsonl").read_text().splitlines()]
    in_run = [json.loads(line) for line in (folders["full"] / "eval" / "base.jsonl").read_text().splitlines()]
    assert by_command == [r["response"] for r in in_run if r["task"] == "qa"]


def test_end_of_run_summary_shows_base_tuned_and_change(runs, capsys, tmp_path):
    root, _ = runs
    config = _run_config(root / "base", tmp_path / "again", root / "qa.jsonl", "full")
    config["eval"]["tasks"] = config["eval"]["tasks"][1:]
    ftdist.train(config)
    err = capsys.readouterr().err
    assert "perplexity nats_per_token" in err and "base" in err and "change" in err


def test_perplexity_on_the_run_val_split_by_command(runs, tmp_path):
    _, folders = runs
    out = tmp_path / "ppl"
    assert (
        main(["eval", str(folders["full"]), "--task", "perplexity", "--limit", "4", "--out", str(out), "--no-progress"])
        == 0
    )
    ours = json.loads(out.with_suffix(".json").read_text())["results"]["perplexity"]["metrics"]
    in_run = json.loads((folders["full"] / "eval" / "tuned.json").read_text())["results"]["perplexity"]["metrics"]
    assert ours == pytest.approx(in_run)


def test_compare_writes_html_and_markdown(runs, tmp_path):
    _, folders = runs
    out = tmp_path / "report"
    assert main(["compare", str(folders["full"]), str(folders["lora"]), "--out", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "| qa | lenient |" in markdown and "full - base" in markdown and "lora - base" in markdown
    assert "train tokens/s (mean)" in markdown and "Per-question agreement: qa" in markdown
    page = (out / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and page.count("data:image/png;base64,") == 2
    assert (out / "curves.png").exists() and (out / "agreement-qa.png").exists()


def test_compare_flags_runs_evaluated_with_different_settings(runs, tmp_path):
    root, folders = runs
    other = tmp_path / "other"
    assert main(["eval", str(folders["lora"]), "--task", "qa", "--data", str(root / "qa.jsonl"),
                 "--max-new-tokens", "3", "--out", str(other), "--no-progress"]) == 0  # fmt: skip
    out = tmp_path / "report"
    assert main(["compare", str(folders["full"]), str(other.with_suffix(".json")), "--out", str(out)]) == 0
    assert "qa: the models were evaluated with different max_new_tokens" in (out / "report.md").read_text()


def test_compare_rejects_a_folder_that_is_no_run(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "neither metrics.jsonl nor eval/tuned.json" in capsys.readouterr().err


# --- the report in a real browser ---------------------------------------------------------------------------
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


BROWSER_SERVICES = ("google.com", "googleapis.com", "gstatic.com")  # Chromium's own update/time/account pings


class _Trap:
    """A TCP listener set as the browser's proxy and as every host's address: each request arrives here, and its
    first line (GET http://host/..., CONNECT host:443) says where it was going."""

    def __init__(self) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen()
        self.port = self.server.getsockname()[1]
        self.requests: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
                connection.settimeout(2)
                self.requests.append(connection.recv(400).split(b"\r\n")[0].decode("latin-1"))
            except OSError:
                continue
            finally:
                connection.close()

    def from_pages(self) -> list[str]:
        """The requests that are not Chromium's own background traffic."""
        return [r for r in self.requests if not any(f"{host}" in r.split(" ")[1] for host in BROWSER_SERVICES)]


def _browse(flags: list[str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_chromium(), *flags, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_without_network(runs, tmp_path):
    _, folders = runs
    out = tmp_path / "report"
    assert main(["compare", str(folders["full"]), str(folders["lora"]), "--out", str(out)]) == 0
    trap = _Trap()
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
        f"--proxy-server=http://127.0.0.1:{trap.port}", "--proxy-bypass-list=<-loopback>",
        f"--host-resolver-rules=MAP * 127.0.0.1:{trap.port}", "--virtual-time-budget=5000",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
    ]  # fmt: skip
    page = (out / "report.html").resolve().as_uri()
    dom = _browse(flags, "--dump-dom", page)
    assert 'data-images-loaded="2/2"' in dom.stdout, dom.stderr[-2000:]  # both plots decoded and laid out
    shot = Path(__file__).resolve().parents[3] / "tests" / "artifacts" / "eval_report.png"
    shot.parent.mkdir(exist_ok=True)
    _browse(flags, f"--screenshot={shot}", page)
    assert shot.exists() and shot.stat().st_size > 20_000  # a blank page is a few KB
    assert trap.from_pages() == []  # no request left the report
    # The trap does catch a page's request: a page that loads a remote image is seen.
    probe = tmp_path / "probe.html"
    probe.write_text("<html><body><img src='http://ftdist-probe.test/x.png'></body></html>")
    _browse(flags, "--dump-dom", probe.as_uri())
    assert any("ftdist-probe.test" in r for r in trap.from_pages()), trap.requests


def test_a_checkpoint_folder_evaluates_like_the_final_model(runs, tmp_path):
    root, folders = runs
    common = ["--task", "qa", "--data", str(root / "qa.jsonl"), "--max-new-tokens", "6", "--no-progress"]
    for method in ("full", "lora"):
        outs = []
        for source in (folders[method], folders[method] / "checkpoints" / "step-12"):
            outs.append(tmp_path / f"{method}-{source.name}")
            assert main(["eval", str(source), *common, "--out", str(outs[-1])]) == 0
        first, second = (o.with_suffix(".jsonl").read_text() for o in outs)
        assert [json.loads(x)["response"] for x in first.splitlines()] == [
            json.loads(x)["response"] for x in second.splitlines()
        ]
