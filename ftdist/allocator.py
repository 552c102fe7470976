"""The host allocator of `ftdist train`: `FTDIST_ALLOCATOR=jemalloc` re-executes the command once, at its start,
under jemalloc (Linux); `FTDIST_ALLOCATOR=glibc-lean` re-executes it under glibc with two tunables.

Why: glibc's malloc keeps the freed blocks of a training step in its heaps when their sizes change from step to
step (a preference batch's width is its longest pair), so the host RSS creeps up to well above what the tensors
need. The SmolLM2 DPO job's RSS rise was 1.70x the planner's figure under glibc and 0.92x under jemalloc
(docs/preference.md). jemalloc is what PyTorch's own CPU launcher offers for this
(`python -m torch.backends.xeon.run_cpu --enable-jemalloc`), and Ray, a dependency of ftdist, ships a build of it
(`ray/core/libjemalloc.so`), so nothing is compiled or downloaded. An allocator is chosen when the dynamic
linker starts the process (`LD_PRELOAD`), hence the exec: it keeps the process id, so torchrun, srun and Slurm
go on tracking the same process.

It is a choice, not the default, because it trades speed for memory: jemalloc returns freed pages to the
system, and touching them again costs page faults. The same job ran at 85 tokens/s against glibc's 117 (2-core
AVX2 EPYC); with jemalloc's purging off (`MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1`) it ran at 105 and
its RSS rise was 1.26x the plan. Choose it where host memory is what limits the run. A preload the user set
(any `LD_PRELOAD` naming an allocator) is kept as it is. The Python API (`ftdist.train`) cannot change the
allocator of a running process: start that process with
`LD_PRELOAD=$(python -c "import ftdist.allocator as a; print(a.jemalloc_library())")`.

`glibc-lean` keeps glibc and sets what its environment tunables allow (read once, when the process starts, hence
the exec too): at most 2 heaps (`MALLOC_ARENA_MAX=2`; glibc makes up to 8 per core, one per thread that
allocates, and each keeps its own freed blocks) and a fixed 1 MiB mmap threshold (`MALLOC_MMAP_THRESHOLD_`, so
a freed activation of a megabyte or more goes back to the system at once). The DPO job's RSS rise was 0.97x the
plan, at 123 tokens/s against glibc's default 145 (1.63x the plan); either tunable alone left it at 1.61-1.70x.
A value the user set for either variable is kept.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

CHOICE = "FTDIST_ALLOCATOR"  # system (the default: glibc's) | jemalloc | glibc-lean
DONE = "FTDIST_ALLOCATOR_EXECUTED"  # set in the re-executed process: never exec twice
ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")  # a preload naming one of these is the user's choice
# jemalloc's own defaults, except that an idle background thread returns freed pages (not the next allocation)
DEFAULT_CONF = "background_thread:true"
LEAN_GLIBC = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": str(2**20)}


def jemalloc_library() -> Path | None:
    """Ray's build of jemalloc, found without importing Ray (seconds); None where it is not installed."""
    spec = importlib.util.find_spec("ray")
    if spec is None or not spec.submodule_search_locations:
        return None
    library = Path(next(iter(spec.submodule_search_locations))) / "core" / "libjemalloc.so"
    return library if library.is_file() else None


def preload_for(environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-execute with, or None to go on as this process is."""
    choice = environ.get(CHOICE, "system")
    if choice not in ("system", "jemalloc", "glibc-lean"):
        print(
            f"ftdist: note: {CHOICE}={choice} is not one of system, jemalloc, glibc-lean; keeping the system allocator",
            file=sys.stderr,
        )
        return None
    if choice == "system" or environ.get(DONE) or sys.platform != "linux":
        return None
    if choice == "glibc-lean":
        return {**LEAN_GLIBC, **environ, DONE: "1"}  # the user's own values win
    if any(name in environ.get("LD_PRELOAD", "") for name in ALLOCATORS):
        return None
    library = jemalloc_library()
    if library is None:
        print(f"ftdist: note: {CHOICE}=jemalloc, but no libjemalloc.so was found (it comes with ray)", file=sys.stderr)
        return None
    preload = " ".join(part for part in (str(library), environ.get("LD_PRELOAD", "")) if part)
    return {**environ, "LD_PRELOAD": preload, DONE: "1", "MALLOC_CONF": environ.get("MALLOC_CONF", DEFAULT_CONF)}


def reexec_with_allocator() -> None:
    """Replace this process by the same command under the chosen allocator (jemalloc, or glibc with the lean
    tunables), where `preload_for` says so. Call it first
    thing, before anything is imported or started: whatever ran before the exec runs again."""
    environ = preload_for(dict(os.environ))
    if environ is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, sys.orig_argv, environ)
