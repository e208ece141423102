"""``fastvar info``: versions, threads, threading layer, cache folder and engines."""
from __future__ import annotations

import argparse
import os
import sys

from .. import _text


def setup_arguments(subparsers) -> None:
    """Add ``info`` to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``fastvar`` command's subcommands.
    """
    info = subparsers.add_parser("info", help="versions, threads, threading layer, cache dir, "
                                 "engines")
    info.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print what ``fastvar info`` shows.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status (0: done).
    """
    import numba
    import numpy

    from .. import __version__
    from ..engines import ENGINES

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised yet (no parallel kernel has run)"
    cache = numba.config.CACHE_DIR or "__pycache__ next to the package modules"
    print(f"fastvar {__version__}\nPython {sys.version.split()[0]}\nnumpy {numpy.__version__}\n"
          f"numba {numba.__version__}\nnumba threads {numba.get_num_threads()} "
          f"(NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, cores {os.cpu_count()})\n"
          f"threading layer {layer}\ncache dir {cache}\nengines:")
    for engine in sorted(ENGINES.values(), key=lambda e: -e.priority):
        print("\n".join(_text.wrapped(f"  {engine.name:8s} ", engine.summary)).replace(
            "\n  ", "\n" + " " * 11))
    return 0
