"""``fastvar bench``: every registered engine on standard cases, in one process.

For each case and each engine that supports it, the runner compiles (or loads) the
kernels outside the timing, then times ``simulate`` with enough trials to last about
``seconds`` and keeps the best of ``repeats``. It reports layer propagations per second
(trials x depth per second; a trial is one forward and one backward pass) and the ratio
to the NumPy engine measured in the same run. For k > 1 inputs per network it also gives
the GFLOP/s of the layer products against ``numpy.matmul`` on the same shapes.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass

import numba
import numpy as np

from . import api
from ._checks import check_int
from .engines import ENGINES
from .network import mlp


@dataclass(frozen=True)
class Case:
    width: int
    depth: int
    activation: str = "tanh"
    distribution: str = "normal"
    k: int = 1
    init: str = "lecun"

    @property
    def label(self) -> str:
        init = "" if self.init == "lecun" else f" {self.init}"
        dist = "" if self.init == "orthogonal" else f" {self.distribution}"
        return f"w{self.width} d{self.depth} {self.activation}{dist}{init} k={self.k}"

    def network(self):
        kwargs = {} if self.init == "orthogonal" else {"distribution": self.distribution}
        return mlp(self.width, self.depth, activation=self.activation, init=self.init, **kwargs)

    def flops_per_trial(self) -> float:
        """Multiply-adds x 2 of the layer products: forward all layers, backward all but the first."""
        w = self.width
        return 2.0 * w * w * (2 * self.depth - 1)


STANDARD = (
    Case(256, 10, "tanh", "normal"),
    Case(256, 10, "tanh", "uniform"),
    Case(256, 10, "tanh", "truncated_normal"),
    Case(64, 10, "relu", "normal"),
    Case(1024, 4, "tanh", "normal"),
    Case(256, 10, "tanh", "normal", init="orthogonal"),
    Case(256, 10, "tanh", "normal", k=256),
    Case(256, 10, "tanh", "uniform", k=256),
)
QUICK = STANDARD[:2] + (STANDARD[6],)


def _time_run(net, trials: int, engine: str, k: int) -> float:
    start = time.perf_counter()
    api.simulate(net, trials, seed=1, engine=engine, inputs_per_network=k)
    return time.perf_counter() - start


def predicted_seconds(case: Case, engine: str, limit: float) -> float:
    """Seconds one network of k inputs would take, extrapolated from k/4, k/16, ... inputs.

    Lets the runner skip an engine whose cost grows steeply with k (one network could take
    minutes) instead of hanging on it. Compiles the engine's kernels on the way.
    """
    net, probes = case.network(), []
    k = 1
    while k < case.k:
        probes.append(k)
        k *= 4
    times = []
    for k in probes:
        _time_run(net, k, engine, k)  # compile or load the cache
        times.append(_time_run(net, k, engine, k))
        if times[-1] > limit:
            return float("inf")
    if not probes:
        return 0.0
    growth = 1.0 if len(times) < 2 else max(1.0, times[-1] / max(times[-2], 1e-6))
    return times[-1] * growth ** (np.log(case.k / probes[-1]) / np.log(4.0))


def measure(case: Case, engine: str, seconds: float, repeats: int) -> dict:
    """Best-of-``repeats`` layer propagations per second of ``engine`` on ``case``."""
    net, k = case.network(), case.k
    _time_run(net, k, engine, k)  # compile or load the cache outside the timing
    trials = k
    took = _time_run(net, trials, engine, k)
    while took < seconds / 8 and trials < 1 << 40:  # grow until one run is long enough
        trials *= 4 if took < seconds / 32 else 2
        took = _time_run(net, trials, engine, k)
    trials = max(k, int(trials * seconds / max(took, 1e-9)) // k * k)
    best = min(_time_run(net, trials, engine, k) for _ in range(repeats))
    return {"case": case.label, "engine": engine, "trials": trials, "seconds": best,
            "layer_props_per_s": trials * case.depth / best,
            "gflops": trials * case.flops_per_trial() / best / 1e9}


def matmul_gflops(case: Case, seconds: float, repeats: int) -> float:
    """GFLOP/s of numpy.matmul for (k x m) @ (m x n) at the case's shapes."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((case.k, case.width)), rng.standard_normal((case.width, case.width))
    a @ b
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < seconds / 4:
        a @ b
        calls += 1
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        for _ in range(calls):
            a @ b
        best = min(best, time.perf_counter() - tick)
    return 2.0 * case.k * case.width * case.width * calls / best / 1e9


def engines_for(case: Case) -> list[str]:
    """Registered engines that support ``case`` (numpy first), by priority."""
    plan, _ = api.plan(case.network(), case.k, inputs_per_network=case.k, engine="numpy")
    able = [e for e in ENGINES.values() if e.unsupported(plan) is None]
    return [e.name for e in sorted(able, key=lambda e: (e.name != "numpy", -e.priority))]


def run_bench(quick: bool = False, json_out: bool = False, cases=None, engines=None,
              seconds: "float | None" = None, repeats: "int | None" = None, file=None) -> list[dict]:
    """Run the benchmark, print a table (or JSON) to ``file``, return the rows."""
    file = sys.stdout if file is None else file
    cases = (QUICK if quick else STANDARD) if cases is None else cases
    seconds = (0.3 if quick else 0.5) if seconds is None else seconds
    repeats = (2 if quick else 3) if repeats is None else repeats
    rows = []
    if not json_out:
        print(f"fastvar bench: numba threads {numba.get_num_threads()}, best of {repeats} runs of "
              f"~{seconds:g} s; layer propagations per second (forward + backward)", file=file)
        print(f"{'case':38s} {'engine':8s} {'layer-props/s':>14s} {'vs numpy':>9s} {'GFLOP/s':>8s}",
              file=file)
    for case in cases:
        names = [e for e in engines_for(case) if engines is None or e in engines or e == "numpy"]
        base = None
        for name in names:
            guess = predicted_seconds(case, name, 20 * seconds)
            if guess > 20 * seconds:
                rows.append({"case": case.label, "engine": name, "skipped": f"one network of "
                             f"{case.k} inputs would take ~{guess:.3g} s"})
                if not json_out:
                    print(f"{case.label:38s} {name:8s} skipped: {rows[-1]['skipped']}", file=file)
                continue
            row = measure(case, name, seconds, repeats)
            if name == "numpy":
                base = row["layer_props_per_s"]
            row["vs_numpy"] = row["layer_props_per_s"] / base if base else float("nan")
            rows.append(row)
            if not json_out:
                extra = f" {row['gflops']:8.2f}" if case.k > 1 else ""
                print(f"{case.label:38s} {name:8s} {row['layer_props_per_s']:14.4g} "
                      f"{row['vs_numpy']:8.2f}x{extra}", file=file, flush=True)
        if case.k > 1:
            ref = matmul_gflops(case, seconds, repeats)
            row = {"case": case.label, "engine": "matmul", "gflops": ref,
                   "shape": [case.k, case.width, case.width]}
            for other in rows:
                if other["case"] == case.label and "gflops" in other:
                    other["vs_matmul"] = other["gflops"] / ref
            rows.append(row)
            if not json_out:
                print(f"{case.label:38s} {'matmul':8s} {'':14s} {'':9s} {ref:8.2f}  "
                      f"(numpy.matmul {case.k}x{case.width} @ {case.width}x{case.width})", file=file)
    if json_out:
        meta = {"threads": numba.get_num_threads(), "seconds": seconds, "repeats": repeats,
                "cases": [asdict(c) for c in cases]}
        print(json.dumps({"meta": meta, "rows": rows}, indent=1), file=file)
    return rows


def dask_scaling(work_seconds: float = 20.0, repeats: int = 2, file=None) -> dict:
    """A long run on local threads, on a 1-worker and a 2-worker Dask LocalCluster.

    The run (w64 d4 tanh, direct engine) is sized to take about ``work_seconds`` on one
    local thread. Each setting keeps the best of ``repeats`` timed calls, after an untimed
    call that starts the workers and loads the kernels. The per-task overhead is (1-worker
    time - 1-thread time) / tasks: scheduling, shipping the per-block stats back and the
    in-order merge. Returns seconds per setting, speed-ups, tasks, overhead (s and fraction
    of a task).
    """
    from distributed import Client, LocalCluster

    from . import dask_runner

    file = sys.stdout if file is None else file
    net = mlp(64, 4, activation="tanh", init="lecun")
    trials = 1 << 14
    with api._numba_threads(1):
        api.simulate(net, trials, engine="direct")  # compile or load the cache
        took = _best(lambda: api.simulate(net, trials, seed=1, engine="direct"), 1)
    trials = int(trials * work_seconds / took)
    run = lambda **kw: api.simulate(net, trials, seed=1, engine="direct", **kw)  # noqa: E731
    times = {}
    for threads in (1, numba.get_num_threads()):
        with api._numba_threads(threads):
            times[f"local {threads} thread(s)"] = _best(run, repeats)
    request, engine = api.plan(net, trials, engine="direct")
    tasks = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            api.simulate(net, 256, engine="direct", client=client)  # start and warm workers
            times[f"dask {workers} worker(s)"] = _best(lambda: run(client=client), repeats)
            size = dask_runner.task_blocks(request, engine, 1, workers)
            tasks[workers] = -(-request.blocks // size)
    one = times["local 1 thread(s)"]
    overhead = (times["dask 1 worker(s)"] - one) / tasks[1]
    task_s = one / tasks[1]
    out = {"trials": trials, "seconds": times, "tasks": tasks,
           "speedup_2_vs_1_worker": times["dask 1 worker(s)"] / times["dask 2 worker(s)"],
           "task_seconds": task_s, "overhead_per_task_s": overhead,
           "overhead_fraction": overhead / task_s}
    print(f"fastvar bench --dask: {trials} trials of w64 d4 tanh (direct), best of {repeats}",
          file=file)
    for name, t in times.items():
        print(f"  {name:22s} {t:8.2f} s  ({one / t:.2f}x one thread)", file=file)
    print(f"  2 workers vs 1: {out['speedup_2_vs_1_worker']:.2f}x; {tasks[1]} tasks of "
          f"{task_s:.2f} s; overhead {overhead * 1e3:.1f} ms per task "
          f"({100 * out['overhead_fraction']:.1f}% of a task)", file=file)
    return out


def _best(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - tick)
    return best


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to an argparse ``subparsers`` object."""
    p = subparsers.add_parser("bench", help="time the engines on standard cases (ratio to NumPy)",
                              description=__doc__.split("\n\n")[1].replace("\n", " ").replace("``", ""))
    p.add_argument("--quick", action="store_true", help="three cases, short runs")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--engine", action="append", help="only this engine (and numpy); repeatable")
    p.add_argument("--seconds", type=float, default=None, help="target seconds per timed run")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (best kept)")
    p.add_argument("--threads", type=int, default=None, help="numba threads (default: all)")
    p.add_argument("--dask", action="store_true", help="instead: a long run on local threads vs "
                   "1 and 2 Dask workers (LocalCluster); scaling and per-task overhead "
                   "(needs fastvar[dask]); --seconds sets its length on one thread (default 20)")
    p.set_defaults(func=_command)
    return p


def _command(args) -> int:
    for name in args.engine or ():
        if name not in ENGINES:
            raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINES)}")
    if args.seconds is not None and not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.repeats is not None and args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    if args.threads is not None:
        check_int("threads", args.threads, 1, numba.config.NUMBA_NUM_THREADS)
    if args.dask:
        dask_scaling(args.seconds or 20.0, args.repeats or 2)
        return 0
    with api._numba_threads(args.threads):
        run_bench(quick=args.quick, json_out=args.json, engines=args.engine, seconds=args.seconds,
                  repeats=args.repeats)
    return 0


def main(argv: "list[str] | None" = None) -> int:
    """``python -m fastvar.bench [--quick] [--json]``."""
    parser = argparse.ArgumentParser(prog="fastvar")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench"] + list(sys.argv[1:] if argv is None else argv))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
