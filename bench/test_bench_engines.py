"""pytest-benchmark: the registered engines on the same requests.

    pytest bench/test_bench_engines.py --benchmark-enable            # timings
    pytest bench/test_bench_engines.py --benchmark-disable           # CI: each body once

Engines come from the registry (a new engine shows up here by itself); a request an
engine declines is skipped. Each test warms up (compiles or loads the numba cache)
before ``benchmark(...)`` so compile time never enters a timing.
"""
import pytest

import fastvar
from fastvar.bench import Case, predicted_seconds
from fastvar.engines import ENGINES

CASES = {
    # id: (width, depth, activation, distribution, k, trials)
    "w256-d10-tanh-normal-k1": (256, 10, "tanh", "normal", 1, 64),
    "w256-d10-tanh-uniform-k1": (256, 10, "tanh", "uniform", 1, 64),
    "w64-d10-relu-normal-k1": (64, 10, "relu", "normal", 1, 1024),
    "w256-d4-tanh-normal-k256": (256, 4, "tanh", "normal", 256, 256),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("engine", list(ENGINES))
def test_engine(benchmark, engine, case):
    width, depth, activation, distribution, k, trials = CASES[case]
    net = fastvar.mlp(width, depth, activation=activation, init="lecun", distribution=distribution)
    plan, _ = fastvar.api.plan(net, trials, engine="numpy", inputs_per_network=k)
    reason = ENGINES[engine].unsupported(plan)
    if reason is not None:
        pytest.skip(reason)
    if predicted_seconds(Case(width, depth, activation, distribution, k), engine, 5.0) > 10.0:
        pytest.skip(f"one network of {k} inputs would take over 10 s on this engine")
    benchmark.group = case
    benchmark.extra_info["layer_propagations"] = trials * depth
    fastvar.simulate(net, k, engine=engine, inputs_per_network=k)  # warm-up: compile / load cache
    res = benchmark(fastvar.simulate, net, trials, seed=1, engine=engine, inputs_per_network=k)
    assert res.trials == trials
