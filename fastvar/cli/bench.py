"""``fastvar bench``: the engines timed on standard cases, as ratios to the NumPy engine."""
from __future__ import annotations

import argparse


def setup_arguments(subparsers) -> None:
    """Add ``bench`` to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``fastvar`` command's subcommands.
    """
    from .. import bench

    about = bench.__doc__.split("\n\n")[1].replace("\n", " ").replace("``", "")
    p = subparsers.add_parser("bench", help="time the engines on standard cases (ratio to NumPy)",
                              description=about)
    p.add_argument("--quick", action="store_true", help="three cases, shorter runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--engine", action="append", help="only this engine (and numpy); repeatable")
    p.add_argument("--seconds", type=float, default=None, help="target seconds per timed run")
    p.add_argument("--repeats", type=int, default=None,
                   help=f"interleaved rounds per case (median kept; default {bench.REPEATS})")
    p.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    p.add_argument("--dask", action="store_true", help="instead: a long run on local threads vs "
                   "1 and 2 Dask workers (LocalCluster); scaling and per-task overhead "
                   "(needs fastvar[dask]); --seconds sets its length on one thread (default 20)"
                   "; then sweeps of 32 and of 1000 tiny configurations on 2 workers")
    p.set_defaults(func=run)


MIN_SECONDS, MAX_SECONDS = 0.01, 600.0  # of one timed run
MAX_REPEATS = 1000


def run(args: argparse.Namespace) -> int:
    """Run ``fastvar bench``.

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

    from .. import bench
    from .._checks import check_int
    from .._threads import numba_threads
    from ..engines import ENGINES

    for name in args.engine or ():
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    if args.seconds is not None and not MIN_SECONDS <= args.seconds <= MAX_SECONDS:
        raise ValueError(f"--seconds must be between {MIN_SECONDS:g} and {MAX_SECONDS:g} "
                         f"(seconds per timed run), got {args.seconds}")
    if args.repeats is not None:
        check_int("--repeats", args.repeats, 1, MAX_REPEATS)
    if args.threads is not None:
        check_int("threads", args.threads, 1, numba.config.NUMBA_NUM_THREADS)
    if args.dask:
        bench.dask_scaling(args.seconds or 20.0, args.repeats or 2)
        bench.dask_sweeps(args.repeats or 3)
        return 0
    with numba_threads(args.threads):
        bench.run_bench(quick=args.quick, json_out=args.json, engines=args.engine,
                        seconds=args.seconds, repeats=args.repeats)
    return 0
