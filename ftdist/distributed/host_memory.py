"""Host memory that goes back to the system while a model loads: freed blocks, and read pages of the weight files.

Why by hand: glibc's malloc raises its mmap threshold each time a large block is freed (up to 32 MiB), after which
blocks of up to that size come from the heap, and a freed heap block stays in the process. Loading a model frees
many such blocks: under ZeRO-3 each module is built whole and partitioned, and every parameter is gathered
whole on every rank to be loaded; under a skeleton load, tensors are converted and copied. On a rank that never
reads the weights (ZeRO-3 rank 1 of 2, a 0.32 B Llama in fp32) the peak RSS of the load was 1.57 GiB over the
start with glibc's default, and 0.84 GiB with a fixed 128 KiB threshold: the rest was freed memory kept by the
heap. No library sets this: torch's CPU allocator is plain malloc, and jemalloc or tcmalloc are a preload the
user must install. Training itself keeps glibc's behaviour, whose reuse of freed blocks is faster for a step's
tensors (a fixed threshold cost about 15-20% of a CPU step in docs/preference.md).

The threshold decides only requests the heap cannot serve from its free chunks: a load early in a process, as
training's is, gets all of it; in a process whose heap earlier work left fragmented, part of the load reuses
those chunks (which costs no new memory either). Only where the C library is glibc (Linux); elsewhere
`released_on_free` does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Iterator
from pathlib import Path

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (glibc's malloc.h)
WHILE_LOADING = 128 << 10  # glibc's starting threshold: every block of 128 KiB or more is its own mapping
AFTER_LOADING = 32 << 20  # the ceiling glibc's own dynamic threshold climbs to (64-bit): where a run settles


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


@contextlib.contextmanager
def released_on_free() -> Iterator[None]:
    """Within this block, blocks of 128 KiB or more are mapped one by one, so freeing one returns it at once.
    After it, the threshold is fixed at glibc's own ceiling (mallopt cannot give back the dynamic one, which
    would climb there during training anyway), or at the user's `MALLOC_MMAP_THRESHOLD_` where one is set, and
    the heap's free pages are returned (`malloc_trim`)."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, WHILE_LOADING)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, _after_loading())
        libc.malloc_trim(0)


def _after_loading() -> int:
    """The threshold training runs with: the user's own (glibc's `MALLOC_MMAP_THRESHOLD_`), else glibc's ceiling."""
    try:
        return int(os.environ.get("MALLOC_MMAP_THRESHOLD_", AFTER_LOADING))
    except ValueError:
        return AFTER_LOADING


MADV_PAGEOUT = 21  # madvise's advice number (Linux 5.4+): reclaim these pages now, losing no data


@contextlib.contextmanager
def file_pages_returned(files: list[Path], every_s: float = 0.1) -> Iterator[None]:
    """Within this block, the pages of `files` (memory-mapped weight files) that this process has read are handed
    back to the kernel every `every_s` seconds, and once more at the end.

    Why: transformers memory-maps a safetensors file, and every page a load reads stays in the process's RSS
    until the file is unmapped, which is after the strategy has copied the weights into storage of its own
    (FSDP2's shards, DeepSpeed's partitions, a GPU). So rank 0's peak held the file beside that copy: one more
    model in host memory, at 1 rank and at 64. Nothing in transformers, safetensors or torch returns the pages
    of a mapping it keeps open, and the copying happens inside them (transformers' ZeRO-3 load, DeepSpeed's
    broadcast, torch's state-dict broadcast), hence a ticker beside them rather than a call after each tensor.
    `MADV_PAGEOUT` is safe whoever still uses the memory: a clean file page is read again if touched, and a
    page the process wrote is never dropped (without swap it stays). Only on Linux; elsewhere nothing is done."""
    paths = {str(Path(f).resolve()) for f in files}
    libc = _glibc()
    if not paths or libc is None or not Path("/proc/self/maps").exists():
        yield
        return
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    stop = threading.Event()

    def release() -> bool:  # False on a kernel before 5.4 (EINVAL): nothing more to do
        return all(libc.madvise(start, end - start, MADV_PAGEOUT) == 0 for start, end in _mapped_ranges(paths))

    def tick() -> None:
        while not stop.wait(every_s) and release():
            pass

    ticker = threading.Thread(target=tick, name="ftdist-file-pages", daemon=True)
    ticker.start()
    try:
        yield
    finally:
        stop.set()
        ticker.join()
        release()


def _mapped_ranges(paths: set[str]) -> list[tuple[int, int]]:
    """(start, end) of this process's mappings of `paths`, from /proc/self/maps."""
    ranges = []
    with open("/proc/self/maps") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].rstrip("\n") in paths:
                start, end = fields[0].split("-")
                ranges.append((int(start, 16), int(end, 16)))
    return ranges
