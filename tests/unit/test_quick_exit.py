"""`ftdist.quick_exit`: the console command skips Python's teardown, but not what Python does before it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO

PROGRAM = textwrap.dedent(
    """
    import atexit, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from ftdist.quick_exit import exit_without_teardown

    atexit.register(lambda: print("atexit handler ran"))
    threading.Thread(target=lambda: (time.sleep(0.3), print("thread finished"))).start()
    ThreadPoolExecutor(1).submit(lambda: (time.sleep(0.3), print("executor task finished")))
    print("buffered output", end="")  # no newline: still in the buffer of a pipe
    exit_without_teardown(3)
    """
)


def test_threads_finish_atexit_runs_output_is_flushed_and_the_code_is_kept():
    result = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 3, result.stderr
    assert result.stdout.startswith("buffered output")
    assert "thread finished" in result.stdout and "executor task finished" in result.stdout
    assert result.stdout.rstrip().endswith("atexit handler ran")  # after the threads, as in Python's own shutdown
