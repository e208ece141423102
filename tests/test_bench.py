"""`fastvar bench`: the runner and its command line, on tiny cases (no timings asserted)."""
import io
import json
import math

import numpy as np

from fastvar import bench, cli
from fastvar.engines.base import INPUTS_NORMAL, Plan, kernel_args
from fastvar.kernels import exact as exact_kernels
from fastvar.kernels import rng


def test_run_bench_reports_every_engine_with_its_numpy_ratio():
    cases = [bench.Case(8, 2, "tanh", "uniform"), bench.Case(8, 2, "relu", "normal", k=4)]
    out = io.StringIO()
    rows = bench.run_bench(cases=cases, engines=["direct"], seconds=0.01, repeats=3, json_out=True,
                           file=out)
    assert json.loads(out.getvalue())["rows"] == json.loads(json.dumps(rows))
    by = {(r["case"], r["engine"]): r for r in rows}
    for case in cases:
        assert by[(case.label, "numpy")]["vs_numpy"]["median"] == 1.0
        row = by[(case.label, "direct")]
        assert row["range"]["min"] <= row["layer_props_per_s"] <= row["range"]["max"]
        assert row["vs_numpy"]["min"] <= row["vs_numpy"]["median"] <= row["vs_numpy"]["max"]
    assert by[(cases[1].label, "matmul")]["gflops"] > 0
    assert "vs_matmul" in by[(cases[1].label, "direct")]


def test_table_and_command_line():
    from fastvar.cli import bench as cli_bench

    out = io.StringIO()
    bench.run_bench(cases=[bench.Case(4, 2)], engines=["direct"], seconds=0.01, repeats=1, file=out)
    lines = out.getvalue().splitlines()
    assert "vs numpy" in lines[2] and any(" direct " in line for line in lines[3:])
    assert lines[-1].startswith("took ")
    args = cli.build_parser().parse_args(["bench", "--quick", "--json", "--engine", "direct"])
    assert args.quick and args.json and args.engine == ["direct"] and args.func is cli_bench.run


def test_slow_engines_are_skipped_not_waited_for():
    assert bench.predicted_seconds(bench.Case(8, 2, k=1), "direct", 1.0) == 0.0
    assert bench.predicted_seconds(bench.Case(8, 2, k=16), "numpy", 1.0) < 1.0


def test_rounds_interleave_the_engines():
    order = []
    timers = {name: bench.Timer(lambda name=name: order.append(name) or 1.0, 1.0)
              for name in ("numpy", "exact", "direct")}
    bench.interleave(timers, 2)
    assert order == ["numpy", "exact", "direct"] * 2
    timers["exact"].seconds = [0.5, 0.25]
    assert bench.paired(timers["exact"], timers["numpy"]) == {"median": 3.0, "min": 2.0,
                                                              "max": 4.0}


def test_calibration_sizes_the_work_past_the_fixed_cost_of_a_call():
    # a call costs 50 ms + 1 ms per unit: 0.5 s of it is 450 units, not 0.5 / 0.051 = 9
    work = bench._calibrate(lambda units: 0.05 + 1e-3 * units, 0.5)
    assert 440 <= work <= 460


def test_calibration_is_not_sized_by_a_compile():
    # the first call past 64 units compiles for 10 s: sized from that call the work would be
    # ~25 units (0.5 s of 10 s + 1 ms each), timing mostly the fixed cost
    compiled = []

    def run(units):
        first = units > 64 and not compiled
        if first:
            compiled.append(units)
        return 0.05 + 1e-3 * units + (10.0 if first else 0.0)

    assert 440 <= bench._calibrate(run, 0.5) <= 460


def test_exact_draws_count_the_normals_the_engine_takes():
    # the bank after one network is the fresh bank advanced by the counted draws (each
    # call rounds its raw draws up to a multiple of LANES), with and without bias and k > 1
    for k, bias in ((1, 0.0), (3, 0.5)):
        net = bench.Case(40, 3).network()
        if bias:
            net = bench.mlp(40, 3, activation="tanh", init="lecun", bias_std=bias)
        args = kernel_args(Plan(net, k, 7, INPUTS_NORMAL, np.zeros((1, 40)), k, True))
        gen = exact_kernels.generator(args, 0)
        start = gen[1].copy()
        ws, mats = exact_kernels.workspace(k)
        exact_kernels.network(args, gen, exact_kernels.buffers(args), ws, mats)
        steps = sum(math.ceil(count / rng.LANES) for count in bench.exact_draws(net, k))
        bits = np.empty(steps * rng.LANES, dtype=np.uint64)
        rng._bank_steps(start, bits, steps)
        assert np.array_equal(start[:4 * rng.LANES], gen[1][:4 * rng.LANES])
        assert sum(bench.exact_draws(net, k)) == k * (40 + 3 * 40 + 40 + 2 * 40) + (
            2 * 40 if bias else 0)


def test_rng_timer_counts_normals():
    timer = bench.rng_timer(256, 0.01)
    bench.interleave({"rng": timer}, 2)
    assert timer.units % 256 == 0 and len(timer.seconds) == 2


def test_small_calls_row_and_its_line():
    row = bench.small_calls(2, calls=2, shape=(4, 2, 10, 40))
    assert row["trials"] == [10, 40] and row["engine"] == "small calls"
    for key in ("seconds", "big_seconds", "ratio"):
        assert 0 < row[key]["min"] <= row[key]["median"] <= row[key]["max"]
    out = io.StringIO()
    bench._print_rows([row], out)
    text = out.getvalue()
    assert "small calls: 10 trials take" in text and "of a 40-trial call" in text
    assert json.loads(json.dumps(row)) == row


def test_a_noisy_run_says_so_under_the_table():
    # figures of +-139% (review: another job running) were printed with nothing said
    from fastvar.bench import noise_note

    def row(low, median, high):
        return {"range": {"min": low, "median": median, "max": high}}

    assert noise_note([row(9, 10, 11), row(90, 100, 190)], 1.0) is None  # +-10%, +-50%
    note = noise_note([row(9, 10, 11), row(10, 100, 290)], 3.2)  # +-140%
    assert note is not None and "+-140%" in note and "load 3.2" in note
    assert noise_note([{"gflops": 1.0}], 0.0) is None  # rows without a range do not count
