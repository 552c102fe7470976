"""While a model loads (`released_on_free`), a freed block leaves the process at once; outside, glibc keeps
freed heap blocks, which is what made a ZeRO-3 rank that never reads the weights peak 0.7 GiB higher
(ftdist/distributed/host_memory.py). Real glibc, real blocks: every other block of a run is freed, so the freed
ones sit between live ones, where the heap cannot shrink past them. And the pages of a memory-mapped weights
file that a load has read leave the process's RSS (`file_pages_returned`), with no value changed, not even one
the process wrote.

In a fresh process, as a training process loads its model early: glibc serves a request from free heap chunks
before it considers mapping one, so in a process whose heap earlier work left fragmented (a pytest worker after
hundreds of tests) the threshold decides nothing, and the check would measure that history instead."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import REPO
from ftdist.distributed.host_memory import _glibc, file_pages_returned
from ftdist.planner.runtime import _rss_bytes

pytestmark = pytest.mark.skipif(_glibc() is None, reason="glibc only (Linux); elsewhere released_on_free does nothing")

PROBE = """
import ctypes, json
from ftdist.distributed.host_memory import _glibc, released_on_free

BLOCK, BLOCKS = 2 << 20, 32  # above the 128 KiB threshold, below glibc's 32 MiB ceiling
libc = _glibc()
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

def freed_every_other_block():
    blocks = [libc.malloc(BLOCK) for _ in range(BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, BLOCK)
    before = rss()
    for block in blocks[::2]:
        libc.free(block)
    returned = before - rss()
    for block in blocks[1::2]:
        libc.free(block)
    return returned

with released_on_free():
    pass  # afterwards the threshold is fixed at glibc's own ceiling
outside = freed_every_other_block()
with released_on_free():
    inside = freed_every_other_block()
print(json.dumps({"outside": outside, "inside": inside, "half": BLOCK * BLOCKS // 2}))
"""


def test_freed_blocks_leave_the_process_only_while_loading() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    half = figures["half"]
    assert figures["outside"] < half / 4, figures  # kept by the heap
    assert figures["inside"] > half * 3 / 4, figures  # each block was its own mapping, unmapped when freed


def test_read_pages_of_a_weights_file_leave_the_process_and_no_value_changes(tmp_path) -> None:
    size = 32 << 20
    weights = tmp_path / "model.safetensors"
    save_file({"big": torch.randn(size // 4), "small": torch.arange(4096, dtype=torch.float32)}, str(weights))
    with safe_open(str(weights), "pt") as mapped:  # as transformers loads: the tensors are the mapped file
        big, small = mapped.get_tensor("big"), mapped.get_tensor("small")
        before = _rss_bytes("RssFile")
        total = float(big.sum())  # reads every page
        assert _rss_bytes("RssFile") - before > size * 3 / 4, "safetensors no longer maps the file: the premise changed"
        small[7] = -1.0  # a page this process wrote (copy-on-write): it must survive
        read = _rss_bytes("RssFile")
        with file_pages_returned([weights], every_s=0.01):
            time.sleep(0.2)  # the ticker returns them while the block runs
            assert read - _rss_bytes("RssFile") > size * 3 / 4
        assert float(big.sum()) == total  # read again from the file: the same values
        assert small[7] == -1.0 and small[8] == 8.0
