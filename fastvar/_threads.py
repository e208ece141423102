"""Numba's thread count: for one block of code, and for a process before Numba loads.

Imports no Numba at module level: a Dask worker unpickling :mod:`fastvar.dask_runner`
must be able to set ``NUMBA_NUM_THREADS`` before anything loads Numba.
"""
from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import time
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")


def numba_threads(threads: "int | None") -> contextlib.AbstractContextManager:
    """Run the block with ``threads`` Numba threads (None: leave them), then restore them.

    Numba's count is per calling thread: set it in the thread that runs the kernels.
    """
    # None, as in most calls, costs nothing: no generator to drive
    return contextlib.nullcontext() if threads is None else _numba_threads(threads)


@contextlib.contextmanager
def _numba_threads(threads: int) -> Iterator[None]:
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield
    finally:
        numba.set_num_threads(before)


def threads_for_process(threads: int) -> int:
    """Set NUMBA_NUM_THREADS to ``threads`` if Numba is not loaded yet (and the user did not
    set it), and give the threads a kernel call should use: ``threads``, within Numba's
    pool (at least 1)."""
    if "numba" not in sys.modules and "NUMBA_NUM_THREADS" not in os.environ:
        os.environ["NUMBA_NUM_THREADS"] = str(threads)
    import numba

    return max(1, min(threads, numba.config.NUMBA_NUM_THREADS))


_loadavg: "int | None" = None  # an open /proc/loadavg: a read then costs 3 us, not 13
_CORES = os.cpu_count() or 1  # read once: os.cpu_count() reads /sys (10 us)
# a reading of the system is reused this long: a library calling small runs in a loop (0.3
# ms a call) would otherwise pay its system call, a few us, in every call; the load and the
# free memory change more slowly
RECHECK_SECONDS = 0.01


def reused_briefly(read: Callable[[], T]) -> Callable[[], T]:
    """Decorate a reading of the system (no arguments) so that its value is reused for
    RECHECK_SECONDS; ``.last`` holds (time.monotonic() of the last read, its value)."""
    @functools.wraps(read)
    def reading() -> T:
        now = time.monotonic()
        if now - reading.last[0] >= RECHECK_SECONDS:
            reading.last = (now, read())
        return reading.last[1]

    reading.last = (-math.inf, None)
    return reading


@reused_briefly
def cores_busy() -> bool:
    """Whether other processes keep every core busy right now.

    Then a parallel kernel waits for the scheduler to run its threads: milliseconds
    (measured 7.7 ms on a 2-core VM beside one busy process) where a small run computes for
    a fraction of one. Reads the count of runnable threads in /proc/loadavg (Linux; the
    reading thread is one of them), at most once every RECHECK_SECONDS; False where it
    cannot be read.

    Returns
    -------
    bool
        True if at least as many threads as cores are runnable besides this one.
    """
    global _loadavg
    try:
        if _loadavg is None:
            _loadavg = os.open("/proc/loadavg", os.O_RDONLY)
        running = int(os.pread(_loadavg, 128, 0).split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return False
    return running - 1 >= _CORES
