"""`FTDIST_ALLOCATOR=jemalloc`: the command re-executes itself once, under Ray's jemalloc, keeping its process id;
the default and a wrong value keep glibc's allocator. Real processes, real exec, /proc/self/maps read back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ftdist.allocator import CHOICE, DONE, jemalloc_library
from ftdist.cli import _command_of

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or jemalloc_library() is None, reason="needs Linux and ray's libjemalloc.so"
)

PROBE = (
    "import os; print(os.getpid(), flush=True); from ftdist.allocator import reexec_with_allocator; "
    "reexec_with_allocator(); print(os.getpid(), sum('libjemalloc' in line for line in open('/proc/self/maps')))"
)


def _probe(**env: str) -> tuple[list[str], str]:
    environ = {key: value for key, value in os.environ.items() if key not in (CHOICE, DONE, "LD_PRELOAD")}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**environ, **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split(), done.stderr


def test_jemalloc_is_preloaded_by_one_exec_in_the_same_process() -> None:
    before, after_exec, pid, mapped = _probe(**{CHOICE: "jemalloc"})[0]  # the first line is printed twice
    assert before == after_exec == pid  # one exec, in the same process
    assert int(mapped) > 0


@pytest.mark.parametrize("choice", [None, "system", "jemallocc"])
def test_the_system_allocator_stays_unless_jemalloc_is_asked_for(choice: str | None) -> None:
    output, stderr = _probe(**({CHOICE: choice} if choice else {}))
    assert len(output) == 3 and output[2] == "0"  # no exec: one pid line before, one after
    if choice == "jemallocc":
        assert f"{CHOICE}=jemallocc is not one of system, jemalloc, glibc-lean" in stderr


LEAN_PROBE = (
    "import os; print(os.getpid(), flush=True); from ftdist.allocator import reexec_with_allocator; "
    "reexec_with_allocator(); print(os.getpid(), os.environ.get('MALLOC_ARENA_MAX'), "
    "os.environ.get('MALLOC_MMAP_THRESHOLD_'), sum('libjemalloc' in line for line in open('/proc/self/maps')))"
)


@pytest.mark.parametrize("user_arenas", [None, "4"])
def test_glibc_lean_re_executes_with_the_tunables_and_keeps_the_users_own(user_arenas: str | None) -> None:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("MALLOC_", "FTDIST_ALLOC"))}
    environ[CHOICE] = "glibc-lean"
    if user_arenas:
        environ["MALLOC_ARENA_MAX"] = user_arenas
    done = subprocess.run(
        [sys.executable, "-c", LEAN_PROBE], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    before, after_exec, pid, arenas, threshold, jemalloc = done.stdout.split()  # the first line is printed twice
    assert before == after_exec == pid  # one exec, in the same process
    assert (arenas, threshold, jemalloc) == (user_arenas or "2", str(2**20), "0")


def test_only_train_is_re_executed() -> None:
    assert _command_of(["--verbose", "train", "config.yaml"]) == "train"
    assert _command_of(["plan", "train.yaml"]) == "plan"
