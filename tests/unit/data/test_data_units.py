"""Units of work (`data.unit_mb`): text cut at line ends, tables into row ranges, grouped in file order, in the
fingerprint only when they shape the rows; and a folder built by 2 ranks (real processes, as torchrun or srun
starts them) is the folder 1 process builds, while a failure on one rank publishes nothing and names the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from data_helpers import config, write_jsonl

from ftdist.data.prepare import cache_folder, prepare
from ftdist.data.units import MB, plan_units
from ftdist.errors import DataError

REPO = Path(__file__).resolve().parents[3]
LAUNCHER_PREFIXES = ("SLURM_", "RANK", "WORLD_SIZE", "LOCAL_RANK", "GROUP_RANK", "MASTER_", "TORCHELASTIC_")


def _corpus(folder: Path) -> Path:
    """Three text files of about 7 KB (cut in two at unit_mb=0.004) and two small ones, grouped with doc2's end."""
    folder.mkdir()
    for number in range(3):
        lines = (f"line {i} of file {number}: select name from singer where age > {i * 7 % 97};\n" for i in range(120))
        (folder / f"doc{number}.txt").write_text("".join(lines))
    for name in ("e.txt", "f.txt"):
        (folder / name).write_text(f"a small file {name} holds a few lines\nand ends here\n")
    return folder


def test_units_end_at_line_ends_cover_each_file_once_and_group_small_files(tmp_path):
    cfg = config(tmp_path, recipe="text", path=str(_corpus(tmp_path / "corpus")), seq_len=64, unit_mb=0.004)
    units = plan_units(cfg.data)
    assert len(units) == 6  # doc0..doc2 in two pieces each; the last unit also holds e.txt and f.txt
    assert [part.path.name for part in units[-1].parts] == ["doc2.txt", "e.txt", "f.txt"]
    for path in sorted((tmp_path / "corpus").iterdir()):
        data = path.read_bytes()
        parts = [part for unit in units for part in unit.parts if part.path == path]
        assert [(a.end, b.start) for a, b in zip(parts, parts[1:])] == [(a.end, a.end) for a in parts[:-1]]
        assert parts[0].start == 0 and parts[-1].end == len(data)
        assert all(data[part.end - 1 : part.end] == b"\n" for part in parts)
    assert all(unit.bytes <= 0.004 * MB or len(unit.parts) == 1 for unit in units)
    lines = config(tmp_path, recipe="keywords", path=str(tmp_path / "corpus"), unit_mb=0.004)
    assert all(part.whole for unit in plan_units(lines.data) for part in unit.parts)  # text read as rows: whole


def test_a_table_cut_into_row_ranges_gives_the_same_examples_and_names_lines(tmp_path):
    rows = [{"instruction": f"Name table {i}.", "input": "", "output": f"singer{i}"} for i in range(100)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_jsonl(corpus / "big.jsonl", rows)
    data = {"recipe": "instruction", "path": str(corpus), "seq_len": 256}
    cut = config(tmp_path / "cut", unit_mb=0.002, **data)
    assert [(p.start, p.end, p.rows) for u in plan_units(cut.data) for p in u.parts][1] == (25, 50, True)
    whole, parts = prepare(config(tmp_path / "whole", **data)), prepare(cut)
    assert parts.card["units"] == 4 and whole.card["units"] == 1
    assert [parts.card[k] for k in ("examples", "tokens")] == [whole.card[k] for k in ("examples", "tokens")]
    write_jsonl(corpus / "big.jsonl", [*rows[:57], {**rows[57], "output": "x" * 400}, *rows[58:]])
    with pytest.raises(DataError, match=r"big\.jsonl line 58: the example is"):  # in unit 2, from row 50
        prepare(config(tmp_path / "bad", unit_mb=0.002, **data))


def test_the_unit_size_is_in_the_fingerprint_only_when_the_set_is_larger_than_a_unit(tmp_path):
    corpus = str(_corpus(tmp_path / "corpus"))  # about 21 KB
    small = [cache_folder(config(tmp_path, recipe="text", path=corpus, unit_mb=mb)) for mb in (256, 1, 0.1)]
    large = [cache_folder(config(tmp_path, recipe="text", path=corpus, unit_mb=mb)) for mb in (0.004, 0.008)]
    assert len(set(small)) == 1 and len(set(large)) == 2 and small[0] not in large
    assert len(plan_units(config(tmp_path, recipe="text", path=corpus).data)) == 1


def _ranks(cfg: dict, tmp_path: Path, launcher: str) -> list[subprocess.CompletedProcess]:
    """`ftdist prepare` as 2 ranks of a torchrun-like or an srun-like launch: two plain processes, no process group."""
    path = tmp_path / f"{launcher}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    base = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_PREFIXES)}
    base.update(PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    if launcher == "torchrun":
        ranks = [{"RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r), "MASTER_PORT": "29511"} for r in (0, 1)]
    else:
        ranks = [{"SLURM_PROCID": str(r), "SLURM_NTASKS": "2", "SLURM_JOB_ID": "4242"} for r in (0, 1)]
    argv = [sys.executable, "-m", "ftdist", "prepare", str(path), "--json"]
    processes = [
        subprocess.Popen(argv, cwd=tmp_path, env={**base, **rank}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for rank in ranks
    ]
    done = []
    for process in processes:
        out, err = process.communicate(timeout=240)
        done.append(subprocess.CompletedProcess(argv, process.returncode, out.decode(), err.decode()))
    return done


def _stale_attempt(folder: Path, parts: list) -> None:
    """What a crashed attempt may leave in the shared staging folder: a record of unit 1 whose shard is damaged,
    and a shard no unit lists. Neither may reach the published folder."""
    staging = folder.with_name(f".tmp-{folder.name}-ranks")
    (staging / "units").mkdir(parents=True)
    (staging / "train-u00001-00000.npy").write_bytes(b"half a shard")
    (staging / "train-u00042-00000.npy").write_bytes(b"not listed")
    shard = {"file": "train-u00001-00000.npy", "rows": 1, "crc32": 1}
    index = {"train": {"rows": 1, "shards": [shard], "keys": ["input_ids"]}}
    record = {"unit": 1, "parts": parts, "index": index, "card": {}, "skipped": {}}
    (staging / "units" / "unit-00001.json").write_text(json.dumps(record))


def _rows(folder: Path) -> dict[str, np.ndarray]:
    """Every row of each split, in index order (the split's shards one after another)."""
    from ftdist.data.shards import open_split

    out = {}
    for name in ("train", "val"):
        split = open_split(folder, name)
        out[name] = split.gather(np.arange(len(split)))
    return out


def test_prepare_runs_off_the_main_thread(tmp_path):
    """A Ray Train worker runs the training function on a thread of its own, where Python refuses to set a signal
    handler: preparing there once failed with "signal only works in main thread" (a pool worker's reset of its
    SIGTERM handler also ran in the process itself). The same set is prepared on a thread, as one."""
    import threading

    data = {"recipe": "text", "path": str(_corpus(tmp_path / "corpus")), "seq_len": 64, "unit_mb": 0.004}
    outcome: dict = {}

    def prepare_here() -> None:
        try:
            outcome["card"] = prepare(config(tmp_path / "thread", **data)).card
        except BaseException as error:  # noqa: BLE001 (handed to the test's thread)
            outcome["error"] = error

    thread = threading.Thread(target=prepare_here)
    thread.start()
    thread.join(timeout=120)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["card"]["units"] == 6


def test_units_are_dealt_to_ranks_by_size():
    from types import SimpleNamespace

    from ftdist.data.build_ranks import owners

    sizes = [300, 100, 100, 100, 50, 50, 50, 50]  # u % 2 would give rank 0 500 bytes and rank 1 300
    units = [SimpleNamespace(number=n, bytes=b) for n, b in enumerate(sizes)]
    owner = owners(units, 2)
    held = [sum(b for n, b in enumerate(sizes) if owner[n] == rank) for rank in (0, 1)]
    assert held == [400, 400] and owner[0] == 0
    assert owners(list(reversed(units)), 2) == owner  # the files' sizes decide, not the order they are listed in
    assert set(owners(units, 3).values()) == {0, 1, 2} and set(owners(units[:1], 4).values()) == {0}


@pytest.mark.distributed
def test_two_ranks_build_the_folder_one_process_builds(tmp_path):
    data = {"recipe": "text", "path": str(_corpus(tmp_path / "corpus")), "seq_len": 64, "unit_mb": 0.004}
    one = prepare(config(tmp_path / "one", **data))
    assert one.card["units"] == 6 and one.card["ranks"] == 1
    two = config(tmp_path / "two", **data)
    _stale_attempt(cache_folder(two), plan_units(two.data)[1].describe())
    done = _ranks(two.model_dump(mode="json"), tmp_path, "torchrun")
    assert [d.returncode for d in done] == [0, 0], done[0].stderr[-2000:] + done[1].stderr[-2000:]
    card = json.loads(done[0].stdout)
    assert done[1].stdout == ""  # rank 0 alone prints the card
    folder = Path(card["folder"])
    if not folder.is_absolute():
        folder = tmp_path / folder
    assert folder.name == one.folder.name and card["ranks"] == 2 and card["units"] == 6
    assert (folder / "index.json").read_text() == (one.folder / "index.json").read_text()  # files, rows, CRCs
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in one.folder.iterdir())
    for name, rows in _rows(one.folder).items():
        np.testing.assert_array_equal(_rows(folder)[name], rows)
    numbers = ("examples", "tokens", "splits", "samples", "shards", "pack_window", "dropped", "truncated")
    assert {k: card[k] for k in numbers} == {k: one.card[k] for k in numbers}
    assert sorted(p.name for p in folder.parent.iterdir()) == [folder.name]  # no staging folder left


@pytest.mark.distributed
def test_a_failure_on_one_rank_publishes_nothing_and_names_the_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    row = {"instruction": "Name the table.", "input": "", "output": "singer"}
    rows = [row] * 20 + [{**row, "output": "x" * 400}] + [row] * 39  # line 21: longer than seq_len + 1
    write_jsonl(corpus / "d.jsonl", rows)
    data = {"recipe": "instruction", "path": str(corpus), "seq_len": 256, "unit_mb": 0.0012}
    cfg = config(tmp_path, **data)
    assert [u.parts[0].start for u in plan_units(cfg.data)] == [0, 15, 30, 45]  # rows 15-29 are rank 1's
    done = _ranks(cfg.model_dump(mode="json"), tmp_path, "slurm")
    assert done[1].returncode != 0 and "d.jsonl line 21" in done[1].stderr
    assert done[0].returncode != 0 and "rank 1 failed" in done[0].stderr and "d.jsonl line 21" in done[0].stderr
    cache = Path(cfg.data.cache_dir)
    assert not cache_folder(cfg).exists()
    assert all(p.name.startswith(".tmp-") for p in cache.iterdir())  # only the unpublished staging folder


def test_a_unit_an_earlier_attempt_finished_is_reused_only_while_its_shards_are_whole(tmp_path):
    from ftdist.data.build import Builder
    from ftdist.data.build_ranks import _reusable

    cfg = config(tmp_path, recipe="text", path=str(_corpus(tmp_path / "corpus")), seq_len=64, unit_mb=0.004)
    builder = Builder(cfg)
    unit, other = builder.plan[1], builder.plan[2]
    record = tmp_path / "unit-00001.json"
    record.write_text(json.dumps(builder.unit(unit, tmp_path)))
    assert _reusable(record, unit, tmp_path) and not _reusable(record, other, tmp_path)  # its parts, not another's
    shard = tmp_path / "train-u00001-00000.npy"
    data = shard.read_bytes()
    shard.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # the disk flips a byte
    assert not _reusable(record, unit, tmp_path)  # a damaged shard: the unit is built again
