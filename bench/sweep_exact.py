"""Cost against width: the exact engine (O(n) per layer) against the direct one (O(n^2)).

    python bench/sweep_exact.py            # widths 64 ... 4096, depth 4, tanh, gradients
    python bench/sweep_exact.py --quick    # widths 64 ... 1024, shorter runs
    python bench/sweep_exact.py --threads 1 --repeats 7   # steadier on a shared machine

Prints the seconds per trial of each engine at each width, the slope of log(time)
against log(width) fitted by least squares (about 1 for exact, about 2 for direct), and
the ratio exact / numpy at width 256, depth 10, tanh, with gradients. Times are the
median of several runs (fastvar.bench.measure), so a busy moment inflates them less.
ASV (bench/benchmarks/exact.py) and pytest-benchmark (bench/test_bench_exact.py) use the
same cases.
"""
from __future__ import annotations

import argparse
import sys

import numba
import numpy as np

from fastvar.bench import REPEATS, Case, measure
from fastvar.engines import ENGINES

WIDTHS = (64, 128, 256, 512, 1024, 2048, 4096)
SWEEP_DEPTH = 4
RATIO_CASE = Case(256, 10, "tanh", "normal")  # with gradients, one input per network


def sweep_case(width: int) -> Case:
    return Case(width, SWEEP_DEPTH, "tanh", "normal")


def seconds_per_trial(case: Case, engine: str, seconds: float = 0.3,
                      repeats: int = REPEATS) -> float:
    """Median seconds per trial (forward + backward) of ``engine`` on ``case`` over
    ``repeats`` runs."""
    row = measure(case, engine, seconds, repeats)
    return row["seconds"] / row["trials"]


def loglog_slope(widths, times) -> float:
    """Least-squares slope of log(time) against log(width)."""
    return float(np.polyfit(np.log(widths), np.log(times), 1)[0])


def sweep_engines() -> list[str]:
    return [name for name in ("exact", "direct") if name in ENGINES]


def main(argv: "list[str] | None" = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="widths up to 1024, shorter runs")
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per point (median kept)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        numba.set_num_threads(args.threads)
    widths = WIDTHS[:5] if args.quick else WIDTHS
    seconds, repeats = (0.15, 3) if args.quick else (0.3, REPEATS)
    repeats = args.repeats or repeats
    print(f"{numba.get_num_threads()} numba threads")
    print(f"seconds per trial (tanh, depth {SWEEP_DEPTH}, forward + backward; median of {repeats})")
    print(f"{'width':>6s} " + " ".join(f"{e:>12s}" for e in sweep_engines()))
    times = {e: [] for e in sweep_engines()}
    for w in widths:
        for e in sweep_engines():
            times[e].append(seconds_per_trial(sweep_case(w), e, seconds, repeats))
        print(f"{w:6d} " + " ".join(f"{times[e][-1]:12.4g}" for e in sweep_engines()), flush=True)
    for e in sweep_engines():
        tail = loglog_slope(widths[-4:], times[e][-4:])
        print(f"log-log slope {e}: {loglog_slope(widths, times[e]):.2f} over "
              f"{widths[0]}..{widths[-1]}, {tail:.2f} over {widths[-4]}..{widths[-1]}")
    exact = seconds_per_trial(RATIO_CASE, "exact", seconds, repeats)
    numpy = seconds_per_trial(RATIO_CASE, "numpy", seconds, repeats)
    print(f"{RATIO_CASE.label} with gradients: exact {exact * 1e6:.1f} us, numpy "
          f"{numpy * 1e6:.0f} us per trial: exact / numpy = {numpy / exact:.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
