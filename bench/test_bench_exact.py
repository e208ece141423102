"""pytest-benchmark: the exact engine's width sweep beside the direct engine's.

    pytest bench/test_bench_exact.py --benchmark-enable --benchmark-group-by=param:engine

Each call runs a fixed number of trials (per engine) through the engine's blocks, without
simulate()'s fixed cost per call, so within a group the time grows like the cost per
trial: about n for exact, n^2 for direct. The exact / numpy ratio at width 256, depth 10,
tanh is the "w256-d10-tanh-normal-k1" group of bench/test_bench_engines.py;
``python bench/sweep_exact.py`` prints it together with the fitted log-log slopes.
"""
import pytest

import fastvar
from sweep_exact import WIDTHS, sweep_case, sweep_engines

TRIALS = {"exact": 2048, "direct": 4}  # enough blocks for every thread at every width


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("engine", sweep_engines())
def test_width_sweep(benchmark, engine, width):
    net = sweep_case(width).network()
    plan, chosen = fastvar.api.plan(net, TRIALS[engine], seed=1, engine=engine)
    benchmark.group = f"width-sweep-{engine}"
    benchmark.extra_info["trials"] = plan.trials
    chosen.run(plan, 0, 1)  # warm-up: compile or load the numba cache
    stats = benchmark(chosen.run, plan, 0, plan.blocks)
    assert stats.shape[0] == plan.blocks
