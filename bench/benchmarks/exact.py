"""ASV: the exact engine's cost against width (about n, direct about n^2), and its ratio to NumPy.

The cases and the timing helper are those of ``bench/sweep_exact.py`` (the same sweep as
a script that prints the fitted slopes). Run from the repository root:

    asv run --config bench/asv.conf.json --python=same -b Exact
"""
import os
import sys

from fastvar import bench

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sweep_exact as sweep  # noqa: E402  (bench/sweep_exact.py)


class ExactWidthSweep:
    """Tanh, depth 4, forward + backward, one input per network, widths 64 ... 4096."""

    params = [sweep.sweep_engines(), list(sweep.WIDTHS)]
    param_names = ["engine", "width"]
    timeout = 300

    def track_us_per_trial(self, engine, width):
        """Microseconds per trial: median of 5 runs of ~0.3 s (a run of a fixed, small number
        of trials measured mostly the fixed cost of a simulate() call)."""
        return 1e6 * sweep.seconds_per_trial(sweep.sweep_case(width), engine)

    track_us_per_trial.unit = "us/trial"


class ExactWidthSlope:
    """Fitted slope of log(time per trial) against log(width): ~1 for exact, ~2 for direct."""

    params = [sweep.sweep_engines()]
    param_names = ["engine"]
    timeout = 600

    def track_loglog_slope(self, engine):
        times = [sweep.seconds_per_trial(sweep.sweep_case(w), engine, 0.2) for w in sweep.WIDTHS]
        return sweep.loglog_slope(sweep.WIDTHS, times)

    track_loglog_slope.unit = "d log t / d log n"


class ExactVsNumpy:
    """Width 256, depth 10, tanh, with gradients: exact / numpy speed ratio (target >= 300),
    the two interleaved in one process, median of the rounds' ratios (as `fastvar bench`)."""

    timeout = 300

    def track_speed_ratio(self):
        timers = {e: bench.engine_timer(sweep.RATIO_CASE, e, 0.5) for e in ("numpy", "exact")}
        bench.interleave(timers, bench.REPEATS)
        return bench.paired(timers["exact"], timers["numpy"])["median"]

    track_speed_ratio.unit = "x"
