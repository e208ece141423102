"""ASV: the figures of ``fastvar bench``, case by case, measured the way it measures them.

Every timing here goes through fastvar.bench: a run of simulate() is sized to last about
0.5 s (a call has a fixed cost of 0.1-50 ms, the most on a busy machine: the suite used to
time a fixed 2**22 weight draws a call, 6 trials for the exact engine, and measured mostly
that), and the figure is the median of 5 runs; ratios come from runs interleaved in one
process (numpy, engine, numpy, engine, ...), the median of the rounds' ratios. So ASV and
``fastvar bench`` agree within the machine's noise. Engines come from the registry; a case
an engine declines is skipped. Run from the repository root (see docs/engines.md for
durations):

    asv machine --yes --config bench/asv.conf.json    # once per machine
    asv run --config bench/asv.conf.json --python=same -b "$QUICK"   # the --quick cases
    asv run --config bench/asv.conf.json --python=same                # everything

with (one line)
QUICK="d10 tanh (normal|uniform) k=1'|d10 tanh normal k=256'|MatmulReference|RngBound|SmallCalls"
(a benchmark's parameters are part of the name its -b pattern is matched against).
"""
import numpy as np

import fastvar
from fastvar import bench
from fastvar.engines import ENGINES

SECONDS = 0.5  # as `fastvar bench`
REPEATS = bench.REPEATS
CASES = {case.label: case for case in bench.STANDARD}


def _network(width, depth, activation="tanh", distribution="normal"):
    return fastvar.mlp(width, depth, activation=activation, init="lecun", distribution=distribution)


def _skip_unless_supported(engine, net, trials, k):
    plan, _ = fastvar.api.plan(net, trials, engine="numpy", inputs_per_network=k)
    reason = ENGINES[engine].unsupported(plan)
    if reason is not None:
        raise NotImplementedError(reason)  # ASV marks the combination skipped


def _skip_if_slow(case, engine):
    # as `fastvar bench`: an engine whose cost grows steeply with k is skipped, not waited for
    if bench.predicted_seconds(case, engine, 20 * SECONDS) > 20 * SECONDS:
        raise NotImplementedError(f"one network of {case.k} inputs would take over 10 s")


class Propagate:
    """Layer propagations per second (trials x depth, forward + backward): `fastvar bench`'s
    median column, one process per case and engine."""

    params = [list(CASES), list(ENGINES)]
    param_names = ["case", "engine"]
    timeout = 300

    def setup(self, label, engine):
        case = CASES[label]
        _skip_unless_supported(engine, case.network(), case.k, case.k)
        _skip_if_slow(case, engine)

    def track_layer_props_per_s(self, label, engine):
        return bench.measure(CASES[label], engine, SECONDS, REPEATS)["layer_props_per_s"]

    track_layer_props_per_s.unit = "layer propagations/s"


class SpeedRatio:
    """Speed over the NumPy engine on the same case: `fastvar bench`'s "vs numpy" column."""

    params = [list(CASES), [e for e in ENGINES if e != "numpy"]]
    param_names = ["case", "engine"]
    timeout = 300

    def setup(self, label, engine):
        Propagate.setup(self, label, engine)

    def track_vs_numpy(self, label, engine):
        case = CASES[label]
        timers = {name: bench.engine_timer(case, name, SECONDS) for name in ("numpy", engine)}
        bench.interleave(timers, REPEATS)
        return bench.paired(timers[engine], timers["numpy"])["median"]

    track_vs_numpy.unit = "x"


class MatmulReference:
    """numpy.matmul GFLOP/s on the k = 256 shapes, the yardstick of the k > 1 products.

    A loop of calls lasting about 0.5 s, median of 5: single calls (as timed here before,
    best of 5) last 0.01-5 ms, so they measured the wake-up of OpenBLAS's threads and any
    neighbour's load (0.3-17 GFLOP/s where a loop gives 50-130 on an idle machine)."""

    params = [[64, 256, 1024]]
    param_names = ["width"]
    timeout = 120

    def track_matmul_gflops(self, width):
        return bench.matmul_gflops(bench.Case(width, 1, k=256), SECONDS, REPEATS)

    track_matmul_gflops.unit = "GFLOP/s"


class ProductsVsMatmul:
    """GFLOP/s of the direct engine's layer products over numpy.matmul's on the same shapes
    (k = 256 inputs per network), interleaved in one process: `fastvar bench`'s GFLOP/s."""

    params = [[label for label, case in CASES.items() if case.k > 1]]
    param_names = ["case"]
    timeout = 300

    def setup(self, label):
        if "direct" not in ENGINES:
            raise NotImplementedError("no direct engine")

    def track_fraction_of_matmul(self, label):
        case = CASES[label]
        timers = {"direct": bench.engine_timer(case, "direct", SECONDS),
                  "matmul": bench.matmul_timer(case, SECONDS)}
        bench.interleave(timers, REPEATS)
        scale = case.flops_per_trial() / case.depth / 1e9
        return bench.paired(timers["direct"], timers["matmul"], scale)["median"]

    track_fraction_of_matmul.unit = "of matmul"


class RngBound:
    """The exact engine against its bound, the normals per second of its generator alone
    (bank_normal, as many per call as the engine asks for), at width 256, depth 10, tanh."""

    params = [["rng_alone", "exact_consumes", "fraction"]]
    param_names = ["figure"]
    timeout = 300

    def setup(self, figure):
        if "exact" not in ENGINES:
            raise NotImplementedError("no exact engine")
        self.case = bench.STANDARD[0]
        self.draws = bench.exact_draws(self.case.network(), self.case.k)

    def track_normals(self, figure):
        case, per_trial = self.case, sum(self.draws) / self.case.k
        timers = {"exact": bench.engine_timer(case, "exact", SECONDS),
                  "rng": bench.rng_timer(max(self.draws), SECONDS)}
        bench.interleave(timers, REPEATS)
        if figure == "rng_alone":
            return float(np.median(timers["rng"].rates()))
        if figure == "exact_consumes":
            return float(np.median(timers["exact"].rates())) * per_trial / case.depth
        return bench.paired(timers["exact"], timers["rng"], per_trial / case.depth)["median"]

    track_normals.unit = "normals/s (fraction: of the bound)"


class PeakMemory:
    """Peak memory of a width-4096, depth-4 run with one input per network (target < 300 MB)."""

    params = [list(ENGINES)]
    param_names = ["engine"]
    timeout = 300

    def setup(self, engine):
        self.net = _network(4096, 4)
        _skip_unless_supported(engine, self.net, 2, 1)
        fastvar.simulate(_network(8, 4), 2, engine=engine)  # compile or load the cache first

    def peakmem_width4096_depth4(self, engine):
        fastvar.simulate(self.net, 2, seed=1, engine=engine)


_FIRST_CALL = """
import fastvar
fastvar.simulate(fastvar.mlp(16, 3, activation="tanh"), 8, engine={engine!r})
"""


class CompileLatency:
    """Cold import + first call in a fresh interpreter: with the numba cache warm, and with
    an empty cache dir (every kernel compiles: what a first-time user waits)."""

    params = [[e for e in ENGINES if e != "numpy"], ["warm", "cold"]]
    param_names = ["engine", "cache"]
    timeout = 600
    number = 1
    repeat = 2
    rounds = 1  # a cold compile takes 20-80 s: two of them per engine are enough

    def setup(self, engine, cache):
        fastvar.simulate(_network(16, 3), 8, engine=engine)  # fill the package cache

    def timeraw_import_and_first_call(self, engine, cache):
        if cache == "warm":
            return _FIRST_CALL.format(engine=engine)
        return ("import os, tempfile\nos.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp()\n"
                + _FIRST_CALL.format(engine=engine))


class SmallCalls:
    """A 100-trial call at width 64, depth 4 (default options), against its share (1/200) of
    a 20 000-trial call: `fastvar bench`'s small-calls row, 20 small calls a round
    interleaved with one big one, the median of the rounds. What a library calling fastvar
    in a loop pays per call."""

    timeout = 120

    def track_small_call_ms(self):
        return 1e3 * bench.small_calls(REPEATS)["seconds"]["median"]

    track_small_call_ms.unit = "ms"

    def track_small_call_over_share(self):
        return bench.small_calls(REPEATS)["ratio"]["median"]

    track_small_call_over_share.unit = "x"
