"""Several ranks build one prepared folder: each builds its share of the units, rank 0 seals the folder.

Under torchrun, srun or Ray (`ftdist.distributed.env.detect_env`), the units (`ftdist.data.units`) are dealt to
the ranks by size (`owners`: the largest first, each to the rank with the fewest bytes so far), so a corpus of
one big file and many small ones still splits evenly. Every rank writes into one shared staging folder,
`.tmp-<name>-ranks` beside the final folder: its name comes from the fingerprint, so all ranks agree on it
without talking. A rank builds a unit in a private folder of its own, moves the unit's shards in, then writes
the unit's record `units/unit-<u>.json` (its shards' index entries and card numbers) atomically: a record means
the unit is whole. Rank 0 waits for every record, re-reads every shard against its CRC32, adds the cards up
(samples from the first units), writes the tokenizer, the card and, last, the index, and renames the folder into
place. The other ranks wait for that folder.

A unit's content depends only on the fingerprint and the unit, so the folder is the same whatever the number of
ranks, and a record a crashed earlier attempt left (for the same parts of the same files) is reused rather than
rebuilt: its shards are checked by CRC like any other before sealing, and a failed seal discards the records.

A rank that fails writes `units/failed-<attempt>-rank<r>.txt` holding its error; the others stop when they see
it, and nothing is published. The attempt is named by the launcher's job variables, so a failure left by an
earlier job is not mistaken for one of this job.

Why files, not torch.distributed: `ftdist prepare` starts no process group (srun starts plain processes, and a
rendezvous only for a barrier would add a port and a timeout to configure), and the ranks share a filesystem
anyway, since they write one folder; so they meet there. A wait prints a line every 10 s, and gives up when no
unit has finished for `STALL_S` seconds (a rank that died without a word, or a `data.cache_dir` some rank
cannot see).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ftdist.config import RunConfig
from ftdist.data.build import INTACT, PROGRESS_EVERY_S, Builder
from ftdist.data.shards import INDEX, check_crcs
from ftdist.data.units import Unit
from ftdist.distributed.env import DistEnv
from ftdist.errors import DataError
from ftdist.staging import publish, publish_text, staging_path, storage_errors

STALL_S = 3600.0
POLL_S = 0.2
# The variables that tell one launch from the next (torchrun, Slurm, Ray Train's torch backend).
ATTEMPT_VARIABLES = (
    "TORCHELASTIC_RUN_ID",
    "TORCHELASTIC_RESTART_COUNT",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_JOB_ID",
    "SLURM_STEP_ID",
    "SLURM_RESTART_COUNT",
)


class OtherRankFailed(DataError):
    """Another rank wrote a failure: this rank stops too (and writes none of its own)."""


def build_on_ranks(config: RunConfig, tokenizer, folder: Path, version: int, env: DistEnv) -> tuple[dict, object]:
    """This rank's units into the shared staging folder; on rank 0, seal and publish it. Returns (card, tokenizer)
    as `ftdist.data.build.build` does."""
    shared = staging_path(folder, "-ranks")
    meeting = Meeting(shared / "units", env, folder)
    try:
        builder = Builder(config, tokenizer)  # in the try: a rank that cannot even start tells the others
        builder.progress.label = f"prepare (rank {env.rank} of {env.world_size})"
        if (folder / "card.json").exists():  # published while this rank started
            return json.loads((folder / "card.json").read_text()), builder.tokenizer
        meeting.records.mkdir(parents=True, exist_ok=True)
        owner = owners(builder.plan, env.world_size)
        for unit in builder.plan:
            if owner[unit.number] == env.rank:
                _build_unit(builder, unit, shared, meeting.record(unit.number))
        if env.rank != 0:
            meeting.wait(lambda: False, "rank 0 to seal the prepared folder")
            return json.loads((folder / "card.json").read_text()), builder.tokenizer
        numbers = [unit.number for unit in builder.plan]
        missing = lambda: [n for n in numbers if not meeting.record(n).exists()]  # noqa: E731
        meeting.wait(lambda: not missing(), lambda: f"unit(s) {_listed(missing(), owner)}")
        if (folder / "card.json").exists():  # another job published the same content first
            return json.loads((folder / "card.json").read_text()), builder.tokenizer
        records = [json.loads(meeting.record(n).read_text()) for n in numbers]
        with storage_errors(folder, intact=INTACT):
            try:
                card = builder.seal(records, shared, version, ranks=env.world_size, verify=True)
            except BaseException:
                for number in numbers:  # the next attempt builds every unit again
                    meeting.record(number).unlink(missing_ok=True)
                raise
            shutil.rmtree(meeting.records)
            _drop_unlisted(shared)
            publish(shared, folder, replace=False)
        builder.progress.done(builder.total)
        return card, builder.tokenizer
    except OtherRankFailed:
        raise
    except BaseException as error:
        meeting.fail(error)
        raise


def _build_unit(builder: Builder, unit: Unit, shared: Path, record: Path) -> None:
    """Build `unit` in a private folder, move its shards into `shared`, then write its record (last)."""
    if _reusable(record, unit, shared):
        return
    private = staging_path(shared, f"-u{unit.number:05d}-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(private, ignore_errors=True)
    private.mkdir(parents=True)
    try:
        result = builder.unit(unit, private)
        for path in sorted(private.iterdir()):
            os.replace(path, shared / path.name)
        publish_text(record, json.dumps(result))
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _reusable(record: Path, unit: Unit, shared: Path) -> bool:
    """A record an earlier attempt left for exactly this unit, whose shards are all there and whole."""
    try:
        found = json.loads(record.read_text())
        if found["parts"] != unit.describe():
            return False
        for entry in found["index"].values():
            check_crcs(shared, entry["shards"])
    except (OSError, ValueError, KeyError, DataError):
        return False
    return True


def _drop_unlisted(shared: Path) -> None:
    """Remove shards no unit of the index lists (left by an attempt that crashed before writing a record)."""
    index = json.loads((shared / INDEX).read_text())
    listed = {shard["file"] for entry in index["splits"].values() for shard in entry["shards"]}
    for path in shared.glob("*.npy"):
        if path.name not in listed:
            path.unlink()


def owners(units: list, world_size: int) -> dict[int, int]:
    """Unit number -> the rank that builds it: the largest unit first, each to the rank holding the fewest bytes
    so far (ties: the lower rank). Every rank computes the same answer from the same files' sizes."""
    size = {unit.number: unit.bytes for unit in units}  # each part's size is a stat: ask once
    load = [0] * world_size
    owner = {}
    for number in sorted(size, key=lambda n: (-size[n], n)):
        rank = min(range(world_size), key=lambda r: (load[r], r))
        owner[number], load[rank] = rank, load[rank] + size[number]
    return owner


def _listed(numbers: list[int], owner: dict[int, int]) -> str:
    ranks = sorted({owner[n] for n in numbers})
    shown = ", ".join(map(str, numbers[:8])) + (", ..." if len(numbers) > 8 else "")
    return f"{shown} (rank(s) {', '.join(map(str, ranks))})"


class Meeting:
    """The ranks' shared `units/` folder: unit records, failure notes, and the waits on them."""

    def __init__(self, records: Path, env: DistEnv, folder: Path) -> None:
        self.records, self.env, self.folder = records, env, folder
        self.attempt = attempt_id()
        self.started = time.time()

    def record(self, number: int) -> Path:
        return self.records / f"unit-{number:05d}.json"

    def fail(self, error: BaseException) -> None:
        """Leave this rank's error where the others look (best effort: the error itself is raised anyway)."""
        text = str(error) if isinstance(error, DataError) else f"{type(error).__name__}: {error}"
        note = self.records / f"failed-{self.attempt}-rank{self.env.rank}.txt"
        try:
            self.records.mkdir(parents=True, exist_ok=True)
            publish_text(note, text)
        except OSError:
            pass

    def wait(self, done: Callable[[], bool], what: str | Callable[[], str]) -> None:
        """Until `done()` or the folder is published; raise on another rank's failure or a stall."""
        label = f"prepare (rank {self.env.rank} of {self.env.world_size})"
        seen, changed = self._progress(), time.monotonic()
        last_line = changed
        while not done() and not (self.folder / "card.json").exists():
            self._raise_if_failed()
            now = time.monotonic()
            progress = self._progress()
            if progress != seen:
                seen, changed = progress, now
            waiting = what() if callable(what) else what
            if now - changed > STALL_S:
                raise DataError(
                    f"{label}: waited {STALL_S:.0f} s for {waiting} with no unit finishing; a rank died without "
                    f"a word, or cannot see {self.records.parent} (data.cache_dir must be a folder every rank "
                    "shares). Nothing was published; run `ftdist prepare` again (finished units are reused)"
                )
            if now - last_line >= PROGRESS_EVERY_S:
                last_line = now
                print(f"{label}: waiting for {waiting}", file=sys.stderr, flush=True)
            time.sleep(POLL_S)
        self._raise_if_failed()

    def _progress(self) -> int:
        try:
            return sum(1 for _ in self.records.glob("unit-*.json"))
        except OSError:
            return -1

    def _raise_if_failed(self) -> None:
        for note in sorted(self.records.glob(f"failed-{self.attempt}-rank*.txt")):
            if self.attempt == "local" and note.stat().st_mtime < self.started - 5:
                continue  # left by an earlier launch that set no job variables
            rank = note.stem.rsplit("rank", 1)[-1]
            if rank == str(self.env.rank):
                continue
            raise OtherRankFailed(
                f"rank {rank} failed while preparing the data, so nothing was published: {note.read_text()}"
            )


def attempt_id() -> str:
    """A name for this launch, the same on every rank: a hash of the launcher's job variables."""
    values = [os.environ.get(name, "") for name in ATTEMPT_VARIABLES]
    if not any(values):
        return "local"
    return hashlib.sha256("\0".join(values).encode()).hexdigest()[:12]
