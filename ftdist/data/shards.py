"""Prepared rows on disk as fixed-size, memory-mapped NumPy shards.

A split is a list of `.npy` files `<split>-00000.npy`, ..., each an int32 array (rows, keys, seq_len) holding
the split's keys of each row side by side: `input_ids`, `labels` and `position_ids` (`KEYS`) for the token
recipes, the six or seven keys of `ftdist.data.preference_rows` for preference rows (one row's bytes are
contiguous, so a random row is one read). Every shard but the last holds `rows_per_shard` rows. `index.json`
lists the files with their row counts and CRC32, and the split's keys (an index without them, from before
preference rows, means `KEYS`); it is written last, so a folder with an index is a whole folder.

Readers open each shard with `np.load(mmap_mode="r")`: no rank copies the corpus into its own memory, the
page cache holds it once per node, and a process's RSS does not grow with the corpus. `.npy` over Arrow or
safetensors: NumPy maps it with no extra dependency and gathers rows by fancy indexing directly.
"""

from __future__ import annotations

import io
import json
import zlib
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ftdist.errors import DataError

KEYS = ("input_ids", "labels", "position_ids")
SHARD_BYTES = 64 << 20  # per shard: 5,461 rows at seq_len 1024; 1 B tokens make about 180 files
INDEX = "index.json"


def rows_per_shard(seq_len: int, keys: int = len(KEYS)) -> int:
    return max(1, SHARD_BYTES // (keys * 4 * seq_len))


class ShardWriter:
    """Appends packed rows of one split straight to the open shard file; a shard closes at `rows_per_shard` rows.

    Rows are written as they come (no shard-sized buffer, so memory stays at one window's rows); each file
    starts with the .npy header of a full shard, rewritten for the last, shorter one."""

    def __init__(self, folder: Path, split: str, seq_len: int, keys: tuple[str, ...] = KEYS, tag: str = "") -> None:
        """`tag` goes between the split and the shard number (`train-u00003-00000.npy`: a unit's shards)."""
        self.folder, self.split, self.seq_len, self.keys, self.tag = folder, split, seq_len, tuple(keys), tag
        self.capacity = rows_per_shard(seq_len, len(self.keys))
        self.handle = None
        self.rows = 0  # in the open shard
        self.shards: list[dict] = []

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        """Rows (N, seq_len) per key, as `pack` (or `preference_rows`) returns them."""
        rows = np.stack([arrays[key] for key in self.keys], axis=1).astype(np.int32, copy=False)  # (N, keys, T)
        at = 0
        while at < len(rows):
            if self.handle is None:
                self.handle = open(self.folder / self._name(), "wb")  # noqa: SIM115 (closed in _close_shard)
                self.handle.write(_header(self.capacity, self.seq_len, len(self.keys)))
            take = min(self.capacity - self.rows, len(rows) - at)
            self.handle.write(rows[at : at + take].data)  # a contiguous slice of the stacked rows
            self.rows, at = self.rows + take, at + take
            if self.rows == self.capacity:
                self._close_shard()

    def close(self) -> dict:
        """Close the last (short) shard, re-read every shard to check it, and return the split's index entry."""
        if self.handle is not None:
            self._close_shard()
        check_crcs(self.folder, self.shards)
        return {"rows": sum(s["rows"] for s in self.shards), "shards": self.shards, "keys": list(self.keys)}

    def _name(self) -> str:
        return f"{self.split}{self.tag}-{len(self.shards):05d}.npy"

    def _close_shard(self) -> None:
        path = self.folder / self._name()
        if self.rows != self.capacity:  # the last shard: its header must give its real row count
            keys = len(self.keys)
            full, real = _header(self.capacity, self.seq_len, keys), _header(self.rows, self.seq_len, keys)
            if len(real) != len(full):  # numpy pads headers to 64 bytes, so this does not happen in practice
                raise DataError(f"{path}: cannot rewrite the .npy header in place ({len(full)} -> {len(real)} bytes)")
            self.handle.seek(0)
            self.handle.write(real)
        self.handle.close()
        self.shards.append({"file": path.name, "rows": self.rows, "crc32": _crc32(path)})
        self.handle, self.rows = None, 0


def check_crcs(folder: Path, shards: list[dict]) -> None:
    """Re-read every shard and compare it with the CRC32 recorded when it was written; name the first that differs."""
    for shard in shards:
        found = _crc32(folder / shard["file"])
        if found != shard["crc32"]:
            raise DataError(
                f"{folder / shard['file']}: the shard read back differs from what was written (CRC32 "
                f"{found:08x}, wrote {shard['crc32']:08x}); the disk or filesystem corrupted it. Nothing was "
                "published; check the disk under data.cache_dir and run `ftdist prepare` again"
            )


def _header(rows: int, seq_len: int, keys: int) -> bytes:
    out = io.BytesIO()
    shape = {"descr": np.dtype(np.int32).str, "fortran_order": False, "shape": (rows, keys, seq_len)}
    np.lib.format.write_array_header_1_0(out, shape)
    return out.getvalue()


def write_index(folder: Path, seq_len: int, splits: dict[str, dict], version: int) -> None:
    """`splits`: each split's `ShardWriter.close()` entry (rows, shards, keys); the top-level `keys` are the
    train split's, as before splits recorded their own."""
    keys = splits.get("train", {}).get("keys", list(KEYS))
    index = {"version": version, "seq_len": seq_len, "keys": keys, "splits": splits}
    (folder / INDEX).write_text(json.dumps(index, indent=1))


class ShardedSplit:
    """One split as a read-only mapping key -> `ShardedColumn`, over memory-mapped shards."""

    def __init__(self, files: list[Path], rows: list[int], seq_len: int, keys: tuple[str, ...] = KEYS) -> None:
        self.files, self.seq_len, self._keys = files, seq_len, tuple(keys)
        self.offsets = np.concatenate([[0], np.cumsum(rows, dtype=np.int64)])  # shard k holds rows [o_k, o_k+1)
        self._maps: list[np.ndarray | None] = [None] * len(files)

    @classmethod
    def concat(cls, parts: Iterable[ShardedSplit]) -> ShardedSplit:
        """Several splits read as one, in order (a mixture's val sets, for evaluation)."""
        parts = list(parts)
        files = [f for p in parts for f in p.files]
        rows = [int(n) for p in parts for n in np.diff(p.offsets)]
        return cls(files, rows, parts[0].seq_len, parts[0].keys())

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, key: str) -> ShardedColumn:
        if key not in self._keys:
            raise KeyError(key)
        return ShardedColumn(self, self._keys.index(key))

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def keys(self) -> tuple[str, ...]:
        return self._keys

    def items(self):
        return [(key, self[key]) for key in self._keys]

    def __iter__(self):
        return iter(self._keys)

    def gather(self, index: np.ndarray) -> np.ndarray:
        """Rows `index` (K,) as (K, keys, seq_len), gathered shard by shard."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        out = np.empty((len(index), len(self._keys), self.seq_len), dtype=np.int32)
        shard_of = np.searchsorted(self.offsets, index, side="right") - 1
        for shard in np.unique(shard_of):
            hits = np.flatnonzero(shard_of == shard)
            out[hits] = self.shard(int(shard))[index[hits] - self.offsets[shard]]
        return out

    def shard(self, number: int) -> np.ndarray:
        if self._maps[number] is None:
            rows = int(np.diff(self.offsets)[number])
            self._maps[number] = open_shard(self.files[number], rows, self.seq_len, len(self._keys))
        return self._maps[number]

    def check(self) -> None:
        """Open every shard once, so that a missing or damaged file fails at start, not mid-run."""
        for number in range(len(self.files)):
            self.shard(number)


class ShardedColumn:
    """One key of a split: `len`, `shape`, and rows by index (an int, a slice, or an index array)."""

    def __init__(self, split: ShardedSplit, key: int) -> None:
        self.split, self.key = split, key

    def __len__(self) -> int:
        return len(self.split)

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.split), self.split.seq_len)

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, int | np.integer):
            return self.split.gather(np.array([index]))[0, self.key]
        if isinstance(index, slice):
            index = np.arange(*index.indices(len(self)))
        return self.split.gather(np.asarray(index))[:, self.key]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[np.arange(len(self))]
        return whole if dtype is None else whole.astype(dtype)


def open_split(folder: Path, split: str) -> ShardedSplit:
    """The split of a prepared folder, every shard checked against `index.json` (names the bad file)."""
    index_path = folder / INDEX
    if not index_path.exists():
        raise DataError(
            f"{folder} has no {INDEX}: it was prepared by an older ftdist (one safetensors file) or is incomplete. "
            f"Delete it and run `ftdist prepare` again"
        )
    index = json.loads(index_path.read_text())
    entry = index["splits"][split]
    keys = tuple(entry.get("keys", index.get("keys", KEYS)))
    split_data = ShardedSplit(
        [folder / s["file"] for s in entry["shards"]], [s["rows"] for s in entry["shards"]], index["seq_len"], keys
    )
    split_data.check()
    return split_data


def open_shard(path: Path, rows: int, seq_len: int, keys: int = len(KEYS)) -> np.ndarray:
    fix = f"delete the folder {path.parent} and run `ftdist prepare` again"
    if not path.exists():
        raise DataError(f"{path}: this shard of the prepared data is missing; {fix}")
    try:
        array = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path}: this shard of the prepared data is damaged ({error}); {fix}") from None
    want = (rows, keys, seq_len)
    if array.shape != want or array.dtype != np.int32:
        raise DataError(
            f"{path}: this shard holds {array.dtype} {array.shape}, where the index says int32 {want}; {fix}"
        )
    return array


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            crc = zlib.crc32(block, crc)
    return crc
