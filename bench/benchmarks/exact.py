"""ASV: the exact engine's cost against width (about n, direct about n^2), and its ratio to NumPy.

The cases and the timing helper are those of ``bench/sweep_exact.py`` (the same sweep as
a script that prints the fitted slopes). Run from the repository root:

    asv run --config bench/asv.conf.json --python=same -b Exact
"""
import os
import sys

import fastvar

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import sweep_exact as sweep  # noqa: E402  (bench/sweep_exact.py)


def _trials(engine, width):
    """About 10-100 ms per call: trials ~ 1/n for exact, ~ 1/n^2 for the others."""
    if engine == "exact":
        return max(1, (1 << 16) // width)
    return max(1, (1 << 22) // (width * width))


class ExactWidthSweep:
    """Tanh, depth 4, forward + backward, one input per network, widths 64 ... 4096."""

    params = [sweep.sweep_engines(), list(sweep.WIDTHS)]
    param_names = ["engine", "width"]
    timeout = 300

    def setup(self, engine, width):
        self.net = sweep.sweep_case(width).network()
        self.trials = _trials(engine, width)
        fastvar.simulate(self.net, 1, engine=engine)  # compile or load the cache

    def time_simulate(self, engine, width):
        fastvar.simulate(self.net, self.trials, seed=1, engine=engine)

    def track_us_per_trial(self, engine, width):
        """Best-of-3 microseconds per trial."""
        return 1e6 * sweep.seconds_per_trial(sweep.sweep_case(width), engine)

    track_us_per_trial.unit = "us/trial"


class ExactWidthSlope:
    """Fitted slope of log(time per trial) against log(width): ~1 for exact, ~2 for direct."""

    params = [sweep.sweep_engines()]
    param_names = ["engine"]
    timeout = 600

    def track_loglog_slope(self, engine):
        times = [sweep.seconds_per_trial(sweep.sweep_case(w), engine, 0.2, 3) for w in sweep.WIDTHS]
        return sweep.loglog_slope(sweep.WIDTHS, times)

    track_loglog_slope.unit = "d log t / d log n"


class ExactVsNumpy:
    """Width 256, depth 10, tanh, with gradients: exact / numpy speed ratio (target >= 300)."""

    timeout = 300

    def setup(self):
        for engine in ("exact", "numpy"):
            fastvar.simulate(sweep.RATIO_CASE.network(), 2, engine=engine)

    def track_speed_ratio(self):
        exact = sweep.seconds_per_trial(sweep.RATIO_CASE, "exact")
        numpy = sweep.seconds_per_trial(sweep.RATIO_CASE, "numpy")
        return numpy / exact

    track_speed_ratio.unit = "x"
