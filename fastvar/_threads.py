"""Numba's thread count: for one block of code, and for a process before Numba loads.

Imports no Numba at module level: a Dask worker unpickling :mod:`fastvar.dask_runner`
must be able to set ``NUMBA_NUM_THREADS`` before anything loads Numba.
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def numba_threads(threads: "int | None") -> Iterator[None]:
    """Run the block with ``threads`` Numba threads (None: leave them), then restore them.

    Numba's count is per calling thread: set it in the thread that runs the kernels.
    """
    if threads is None:
        yield
        return
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
