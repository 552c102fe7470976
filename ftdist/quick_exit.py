"""End a finished `ftdist` process without Python's interpreter teardown.

After the work is done, Python's shutdown still frees module after module and garbage-collects the torch,
transformers and DeepSpeed object graphs: about 2 s per process on a 2-core CPU (seen with gdb in
`finalize_modules` -> `gc_collect_main`), paid at the end of every run by the launcher, torchrun's agent and each
rank, one after the other. None of it writes anything. So the command does what Python's shutdown does up to
that point, in its order (wait for non-daemon threads and executors' workers, run the `atexit` handlers, flush
the streams), then ends the process with `os._exit`. Only the console command uses this: `ftdist.cli.main`
called as a function returns as before.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import sys
import threading
from typing import NoReturn


def exit_without_teardown(code: int) -> NoReturn:
    # Private, but it is exactly the first step of Python's own shutdown (Py_FinalizeEx -> threading._shutdown):
    # no public call waits for the threads concurrent.futures registers through threading._register_atexit.
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    with contextlib.suppress(OSError, AttributeError, TypeError):
        ctypes.CDLL(None).fflush(None)  # C libraries' buffered stdout (libc's exit would flush it; _exit does not)
    os._exit(code)
