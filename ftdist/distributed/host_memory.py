"""Host memory that goes back to the system when it is freed, while a model loads.

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
from collections.abc import Iterator

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
    would climb there during training anyway), and the heap's free pages are returned (`malloc_trim`)."""
    libc = _glibc()
    if libc is None:
        yield
        return
    libc.mallopt(M_MMAP_THRESHOLD, WHILE_LOADING)
    try:
        yield
    finally:
        libc.mallopt(M_MMAP_THRESHOLD, AFTER_LOADING)
        libc.malloc_trim(0)
