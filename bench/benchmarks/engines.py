"""ASV: the engines on the same requests (engine x width x depth x activation x distribution x k).

Engines are taken from the registry, so a newly registered engine appears here without
an edit; a combination an engine declines is skipped. Run from the repository root:

    asv run --config bench/asv.conf.json --python=same
    asv run --config bench/asv.conf.json --python=same --quick -b Propagate.track   # a look
"""
import numpy as np

import fastvar
from fastvar.bench import Case, predicted_seconds
from fastvar.engines import ENGINES


def _network(width, depth, activation="tanh", distribution="normal"):
    return fastvar.mlp(width, depth, activation=activation, init="lecun", distribution=distribution)


def _trials(width, depth, k):
    """About 2**22 weight draws per call (at least one network of k inputs)."""
    networks = max(1, (1 << 22) // (width * width * depth * k))
    return networks * k


def _skip_unless_supported(engine, net, trials, k):
    plan, _ = fastvar.api.plan(net, trials, engine="numpy", inputs_per_network=k)
    reason = ENGINES[engine].unsupported(plan)
    if reason is not None:
        raise NotImplementedError(reason)  # ASV marks the combination skipped


def _skip_if_minutes(engine, width, depth, activation, distribution, k):
    # an engine whose cost grows steeply with k (one network taking minutes) is skipped
    case = Case(width, depth, activation, distribution, k)
    if predicted_seconds(case, engine, 20.0) > 60.0:
        raise NotImplementedError(f"one network of {k} inputs would take over a minute")


class Propagate:
    """Forward and backward passes: time per call and layer propagations per second."""

    params = [list(ENGINES), [64, 256, 1024], [4, 10], ["tanh", "relu"],
              ["normal", "uniform"], [1, 256]]
    param_names = ["engine", "width", "depth", "activation", "distribution", "k"]
    timeout = 300

    def setup(self, engine, width, depth, activation, distribution, k):
        self.net = _network(width, depth, activation, distribution)
        self.trials = _trials(width, depth, k)
        _skip_unless_supported(engine, self.net, self.trials, k)
        _skip_if_minutes(engine, width, depth, activation, distribution, k)
        fastvar.simulate(self.net, k, engine=engine, inputs_per_network=k)  # compile or load the cache

    def _run(self, engine, k):
        fastvar.simulate(self.net, self.trials, seed=1, engine=engine, inputs_per_network=k)

    def time_simulate(self, engine, width, depth, activation, distribution, k):
        self._run(engine, k)

    def track_layer_props_per_s(self, engine, width, depth, activation, distribution, k):
        """Layer propagations (trials x depth, forward + backward) per second, best of 3."""
        import time

        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            self._run(engine, k)
            best = min(best, time.perf_counter() - start)
        return self.trials * depth / best

    track_layer_props_per_s.unit = "layer propagations/s"


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

    def setup(self, engine, cache):
        fastvar.simulate(_network(16, 3), 8, engine=engine)  # fill the package cache

    def timeraw_import_and_first_call(self, engine, cache):
        if cache == "warm":
            return _FIRST_CALL.format(engine=engine)
        return ("import os, tempfile\nos.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp()\n"
                + _FIRST_CALL.format(engine=engine))


class MatmulReference:
    """numpy.matmul GFLOP/s on the k = 256 shapes, the yardstick of the k > 1 products."""

    params = [[64, 256, 1024]]
    param_names = ["width"]

    def setup(self, width):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((256, width))
        self.b = rng.standard_normal((width, width))

    def track_matmul_gflops(self, width):
        import time

        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            self.a @ self.b
            best = min(best, time.perf_counter() - start)
        return 2.0 * 256 * width * width / best / 1e9

    track_matmul_gflops.unit = "GFLOP/s"
