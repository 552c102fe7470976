"""While a model loads (`released_on_free`), a freed block leaves the process at once; outside, glibc keeps
freed heap blocks, which is what made a ZeRO-3 rank that never reads the weights peak 0.7 GiB higher
(ftdist/distributed/host_memory.py). Real glibc, real blocks: every other block of a run is freed, so the freed
ones sit between live ones, where the heap cannot shrink past them."""

from __future__ import annotations

import ctypes

import pytest

from ftdist.distributed.host_memory import _glibc, released_on_free
from ftdist.planner.runtime import _rss_bytes

BLOCK = 2 << 20  # above the 128 KiB threshold, below glibc's 32 MiB ceiling
BLOCKS = 32

libc = _glibc()
pytestmark = pytest.mark.skipif(libc is None, reason="glibc only (Linux); elsewhere released_on_free does nothing")


def _freed_every_other_block() -> int:
    """Allocate and touch BLOCKS blocks, free every other one, and return how much RSS that freeing gave back."""
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)
    before = _rss_bytes("VmRSS")
    for block in blocks[::2]:
        libc.free(block)
    returned = before - _rss_bytes("VmRSS")
    for block in blocks[1::2]:
        libc.free(block)
    return returned


def test_freed_blocks_leave_the_process_only_while_loading() -> None:
    with released_on_free():
        pass  # afterwards the threshold is fixed at glibc's own ceiling, whatever ran in this process before
    half = BLOCK * BLOCKS // 2
    assert _freed_every_other_block() < half / 4  # kept by the heap
    with released_on_free():
        assert _freed_every_other_block() > half * 3 / 4  # each block was its own mapping
