"""Numba kernels: random streams, activations, accumulators and engine loops.

Kernels take only arrays and scalars, are compiled with ``cache=True`` and never
call ``np.random``. This package runs before any kernel module imports Numba: it checks
``NUMBA_NUM_THREADS`` (a clear ValueError instead of Numba's traceback) and, where Numba
finds no writable cache folder, lets the kernels compile without one (one NoCacheWarning).
"""
from .._env import check_numba_threads, compile_without_cache_if_unwritable

check_numba_threads()


def _cache_probe() -> None:
    """Stands for the kernels of this folder in Numba's search for a cache folder."""


compile_without_cache_if_unwritable(_cache_probe)
