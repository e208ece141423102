"""`fastvar bench`: the runner and its command line, on tiny cases (no timings asserted)."""
import io
import json

from fastvar import bench, cli


def test_run_bench_reports_every_engine_with_its_numpy_ratio():
    cases = [bench.Case(8, 2, "tanh", "uniform"), bench.Case(8, 2, "relu", "normal", k=4)]
    out = io.StringIO()
    rows = bench.run_bench(cases=cases, engines=["direct"], seconds=0.01, repeats=1, json_out=True,
                           file=out)
    assert json.loads(out.getvalue())["rows"] == json.loads(json.dumps(rows))
    by = {(r["case"], r["engine"]): r for r in rows}
    for case in cases:
        assert by[(case.label, "numpy")]["vs_numpy"] == 1.0
        assert by[(case.label, "direct")]["layer_props_per_s"] > 0
    assert by[(cases[1].label, "matmul")]["gflops"] > 0
    assert "vs_matmul" in by[(cases[1].label, "direct")]


def test_table_and_command_line():
    out = io.StringIO()
    bench.run_bench(cases=[bench.Case(4, 2)], engines=["direct"], seconds=0.01, repeats=1, file=out)
    lines = out.getvalue().splitlines()
    assert "vs numpy" in lines[1] and any(" direct " in line for line in lines[2:])
    args = cli.build_parser().parse_args(["bench", "--quick", "--json", "--engine", "direct"])
    assert args.quick and args.json and args.engine == ["direct"] and args.func is bench._command


def test_slow_engines_are_skipped_not_waited_for():
    assert bench.predicted_seconds(bench.Case(8, 2, k=1), "direct", 1.0) == 0.0
    assert bench.predicted_seconds(bench.Case(8, 2, k=16), "numpy", 1.0) < 1.0
