"""``fastvar bench``: every registered engine on standard cases, in one process.

For each case and each engine that supports it, the runner compiles (or loads) the
kernels outside the timing and sizes a run of ``simulate`` to last about ``seconds``; then
it times the engines in interleaved rounds (numpy, exact, direct, numpy, exact, ...) and
reports the median layer propagations per second (trials x depth per second; a trial is
one forward and one backward pass) with its range, and the ratio to the NumPy engine as
the median of the rounds' ratios. For k > 1 inputs per network it also gives the GFLOP/s
of the layer products against ``numpy.matmul`` on the same shapes, and for the first case
the normals per second the exact engine consumes against its RNG (bank_normal) alone, and
its speed with per-layer histograms (``simulate(histograms=True)``) as a share of its speed
without them (``exact+h``, paired by round like the ratios to NumPy).

On a shared machine a busy neighbour slows a 2-thread engine more than the 1-thread NumPy
one, and in bursts: interleaving puts every engine of a round under the same load, and
medians ignore the odd slow round, so ``--quick`` (fewer cases, shorter runs, same rounds)
agrees with the full run within the printed ranges.
"""
from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass

import numba
import numpy as np

from . import _text, api
from ._threads import numba_threads
from .engines import ENGINES
from .kernels import rng
from .network import mlp


@dataclass(frozen=True)
class Case:
    """One benchmark case: an MLP shape and how many inputs share each network.

    Parameters
    ----------
    width : int
        Units per layer.
    depth : int
        Number of layers.
    activation : str
        The activation.
    distribution : str
        The weight law.
    k : int
        Inputs per network.
    init : str
        The init scheme.
    """
    width: int
    depth: int
    activation: str = "tanh"
    distribution: str = "normal"
    k: int = 1
    init: str = "lecun"

    @property
    def label(self) -> str:
        """The case in a few words, e.g. ``"w256 d10 tanh normal k=1"``."""
        init = "" if self.init == "lecun" else f" {self.init}"
        dist = "" if self.init == "orthogonal" else f" {self.distribution}"
        return f"w{self.width} d{self.depth} {self.activation}{dist}{init} k={self.k}"

    def network(self):
        """The case's network.

        Returns
        -------
        Network
        """
        kwargs = {} if self.init == "orthogonal" else {"distribution": self.distribution}
        return mlp(self.width, self.depth, activation=self.activation, init=self.init, **kwargs)

    def flops_per_trial(self) -> float:
        """Floating-point operations of the layer products of one trial.

        2 x the multiply-adds: forward all layers, backward all but the first.

        Returns
        -------
        float
        """
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
REPEATS = 5  # rounds, quick or not: medians need a few


HISTOGRAMS = "exact+h"  # the exact engine counting histograms


def _time_run(net, trials: int, engine: str, k: int) -> float:
    histograms = engine == HISTOGRAMS
    start = time.perf_counter()
    api.simulate(net, trials, seed=1, engine="exact" if histograms else engine,
                 inputs_per_network=k, histograms=histograms)
    return time.perf_counter() - start


def predicted_seconds(case: Case, engine: str, limit: float) -> float:
    """Seconds one network of k inputs would take, extrapolated from k/4, k/16, ... inputs.

    Lets the runner skip an engine whose cost grows steeply with k (one network could take
    minutes) instead of hanging on it. Compiles the engine's kernels on the way.

    Parameters
    ----------
    case : Case
        The case.
    engine : str
        The engine.
    limit : float
        Give up (inf) once a probe takes longer than this many seconds.

    Returns
    -------
    float
        Predicted seconds; inf when a probe exceeded ``limit``.
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


def _calibrate(run, seconds: float, unit: int = 1) -> int:
    """Work (a multiple of ``unit``) for which ``run(work)`` lasts about ``seconds``.

    ``run(work)`` returns its seconds. It is called once first outside the count (compile
    or load the numba cache), then with doubling work until a call lasts seconds / 4; the
    last two calls give the cost per unit of work apart from the fixed cost per call (a
    simulate() call has one of 0.1-50 ms, the most on a busy machine), so the work is not
    sized from a call that timed mostly that fixed cost. The call that reaches seconds / 4
    is timed again: a kernel first used at that size (the parallel one, past one block)
    compiles inside it, and sizing the work from that call made it a few milliseconds
    long, timing mostly the fixed cost (the first case read 6% of the RNG bound, not 43%).
    """
    run(unit)
    work, took = unit, run(unit)
    prev = None
    while work < 1 << 40:
        if took >= seconds / 4:
            again = run(work)
            if again >= took / 2:
                took = min(took, again)
                break
            took = again  # the first call compiled: go on from the second
            continue
        prev = (work, took)
        work *= 2 if took > seconds / 32 else 8
        took = run(work)
    per_unit = took / work
    if prev is not None and took > prev[1]:
        per_unit = min(per_unit, (took - prev[1]) / (work - prev[0]))
    fixed = max(0.0, took - per_unit * work)
    return max(unit, int(max(seconds - fixed, seconds / 2) / per_unit) // unit * unit)


class Timer:
    """One timed workload: ``units`` (layer propagations, flops, normals) in each ``run()``.

    Parameters
    ----------
    run : callable
        Runs the workload once; returns its seconds.
    units : float
        Units of work in one call.
    trials : int or None
        Trials per call (engines only).
    """

    def __init__(self, run, units: float, trials: "int | None" = None):
        self.run, self.units, self.trials, self.seconds = run, units, trials, []

    def rates(self) -> np.ndarray:
        """Units per second of each timed call so far.

        Returns
        -------
        numpy.ndarray
            Shape (calls,).
        """
        return self.units / np.asarray(self.seconds)


def engine_timer(case: Case, engine: str, seconds: float) -> Timer:
    """simulate() on a case with enough trials to last about ``seconds`` (compiled first).

    Parameters
    ----------
    case : Case
        The case.
    engine : str
        The engine (or ``"exact+h"``: exact with histograms).
    seconds : float
        Target seconds per call.

    Returns
    -------
    Timer
        Units: layer propagations.
    """
    net, k = case.network(), case.k
    trials = _calibrate(lambda t: _time_run(net, t, engine, k), seconds, k)
    return Timer(lambda: _time_run(net, trials, engine, k), trials * case.depth, trials)


def _matmul_operands(case: Case):
    rng = np.random.default_rng(0)
    return rng.standard_normal((case.k, case.width)), rng.standard_normal((case.width, case.width))


def matmul_timer(case: Case, seconds: float) -> Timer:
    """numpy.matmul (k x m) @ (m x n) at the case's shapes, called in a loop for ``seconds``.

    One call at width 256 takes under a millisecond: timing single calls (as ASV did) mostly
    measures the wake-up of the BLAS threads, so the loop is calibrated like the engines.

    Parameters
    ----------
    case : Case
        Its shapes: (k x width) @ (width x width).
    seconds : float
        Target seconds per call.

    Returns
    -------
    Timer
        Units: floating-point operations.
    """
    a, b = _matmul_operands(case)

    def run(calls):
        start = time.perf_counter()
        for _ in range(calls):
            a @ b
        return time.perf_counter() - start

    calls = _calibrate(run, seconds)
    return Timer(lambda: run(calls), 2.0 * case.k * case.width * case.width * calls / 1e9)


@numba.njit(cache=True, parallel=True)
def _bank_normals(seed, blocks, calls, count):
    # ``blocks`` banks in parallel, each drawing ``calls`` x ``count`` normals with
    # bank_normal, as the exact engine's blocks do (a checksum keeps the draws alive)
    total = np.zeros(blocks)
    for block in numba.prange(blocks):
        state = np.empty(4, dtype=np.uint64)
        rng.seed_block(seed, block, state)
        bank = np.empty(rng.BANK_SIZE, dtype=np.uint64)
        rng.seed_bank(state, bank)
        size = (count // rng.LANES + 1) * rng.LANES
        bits, out = np.empty(size, dtype=np.uint64), np.empty(size)
        acc = 0.0
        for _ in range(calls):
            rng.bank_normal(bank, bits, out, count, np.inf)
            acc += out[0]
        total[block] = acc
    return total


def rng_timer(count: int, seconds: float) -> Timer:
    """bank_normal alone: normals per second, ``count`` per call, on all numba threads.

    Parameters
    ----------
    count : int
        Normals per bank_normal call.
    seconds : float
        Target seconds per call.

    Returns
    -------
    Timer
        Units: normals.
    """
    blocks = 4 * numba.get_num_threads()

    def run(calls):
        start = time.perf_counter()
        _bank_normals(1, blocks, calls, count)
        return time.perf_counter() - start

    calls = _calibrate(run, seconds)
    return Timer(lambda: run(calls), float(blocks * calls * count))


def exact_draws(net, k: int = 1, gradients: bool = True) -> list[int]:
    """Counts of the exact engine's bank_normal calls for one network of ``k`` normal inputs.

    Forward: the k inputs (n_0 each), then k n_l per layer; backward: the read-out's k n_L,
    then per layer l = L .. 2, n_l for the bias given z (if any) and k n_{l-1} for W'^T D.
    Their sum over k is the normals per trial (the ziggurat's rare slow path takes a few more
    from the scalar stream); each call also rounds its raw draws up to a multiple of 64.

    Parameters
    ----------
    net : Network
        The network.
    k : int
        Inputs per network.
    gradients : bool
        Count the backward pass's draws.

    Returns
    -------
    list of int
        Normals drawn by each call, in order.
    """
    widths = list(net.widths)
    depth = len(widths) - 1
    calls = [k * widths[0]] + [k * widths[layer] for layer in range(1, depth + 1)]
    if gradients:
        calls.append(k * widths[depth])
        for layer in range(depth, 1, -1):
            if net.bias_std > 0.0:
                calls.append(widths[layer])
            calls.append(k * widths[layer - 1])
    return calls


def measure(case: Case, engine: str, seconds: float, repeats: int) -> dict:
    """Median layer propagations per second of an engine on a case.

    Parameters
    ----------
    case : Case
        The case.
    engine : str
        The engine.
    seconds : float
        Target seconds per call.
    repeats : int
        Timed calls.

    Returns
    -------
    dict
        One row: case, engine, trials, seconds, layer_props_per_s, range, gflops.
    """
    timer = engine_timer(case, engine, seconds)
    for _ in range(repeats):
        timer.seconds.append(timer.run())
    return _engine_row(case, engine, timer)


def _spread(values) -> dict:
    values = np.asarray(values, dtype=float)
    return {"median": float(np.median(values)), "min": float(values.min()),
            "max": float(values.max())}


def _engine_row(case: Case, engine: str, timer: Timer) -> dict:
    rates = timer.rates()
    return {"case": case.label, "engine": engine, "trials": timer.trials,
            "seconds": float(np.median(timer.seconds)),
            "layer_props_per_s": float(np.median(rates)), "range": _spread(rates),
            "gflops": float(np.median(rates)) * case.flops_per_trial() / case.depth / 1e9}


def interleave(timers: dict, repeats: int) -> None:
    """Run the timers in rounds (A, B, C, A, B, C, ...), appending each one's seconds.

    A swing in the machine's load then hits every engine of a round alike, and the ratios
    taken round by round (:func:`paired`) cancel most of it.

    Parameters
    ----------
    timers : dict of str to Timer
        The timers, run in this order each round.
    repeats : int
        Rounds.
    """
    for _ in range(repeats):
        for timer in timers.values():
            timer.seconds.append(timer.run())


def paired(timer: Timer, base: Timer, scale: float = 1.0) -> dict:
    """The round-by-round ratios of one timer's rate to another's.

    Parameters
    ----------
    timer : Timer
        The numerator.
    base : Timer
        The denominator (timed in the same rounds).
    scale : float
        Factor on the ratios.

    Returns
    -------
    dict
        ``median``, ``min`` and ``max`` of the ratios.
    """
    return _spread(scale * timer.rates() / base.rates())


def engines_for(case: Case) -> list[str]:
    """Registered engines that support a case (numpy first), by priority.

    Parameters
    ----------
    case : Case
        The case.

    Returns
    -------
    list of str
    """
    plan, _ = api.plan(case.network(), case.k, inputs_per_network=case.k, engine="numpy")
    able = [e for e in ENGINES.values() if e.unsupported(plan) is None]
    return [e.name for e in sorted(able, key=lambda e: (e.name != "numpy", -e.priority))]


def run_case(case: Case, engines, seconds: float, repeats: int, bound: bool = False) -> list[dict]:
    """Rows of one case, its engines timed in interleaved rounds.

    Its engines (and matmul for k > 1; the RNG bound and the exact engine with histograms if
    ``bound`` and exact is among them); ratios are medians of paired rounds. An engine whose
    one network would take over 20 x ``seconds`` is skipped with a row saying so.

    Parameters
    ----------
    case : Case
        The case.
    engines : sequence of str
        Engines to time.
    seconds : float
        Target seconds per call.
    repeats : int
        Rounds.
    bound : bool
        Also time the RNG bound and the exact engine with histograms.

    Returns
    -------
    list of dict
        One row per engine (and matmul, rng).
    """
    rows, timers = [], {}
    for name in engines:
        guess = predicted_seconds(case, name, 20 * seconds)
        if guess > 20 * seconds:
            rows.append({"case": case.label, "engine": name, "skipped": f"one network of "
                         f"{case.k} inputs would take ~{guess:.3g} s"})
            continue
        timers[name] = engine_timer(case, name, seconds)
    if case.k > 1:
        timers["matmul"] = matmul_timer(case, seconds)
    draws = exact_draws(case.network(), case.k) if bound and case.init != "orthogonal" else None
    if draws and "exact" in timers:
        timers["rng"] = rng_timer(max(draws), seconds)
        timers[HISTOGRAMS] = engine_timer(case, HISTOGRAMS, seconds)
    interleave(timers, repeats)
    for name, timer in timers.items():
        if name in ("matmul", "rng"):
            continue
        row = _engine_row(case, name, timer)
        if "numpy" in timers:
            row["vs_numpy"] = paired(timer, timers["numpy"])
        if "matmul" in timers:  # GFLOP/s per layer propagation
            scale = case.flops_per_trial() / case.depth / 1e9
            row["vs_matmul"] = paired(timer, timers["matmul"], scale)
        if name == HISTOGRAMS:
            row["vs_exact"] = paired(timer, timers["exact"])
        if name == "exact" and "rng" in timers:  # normals per layer propagation
            per_trial = sum(draws) / case.k
            row["normals_per_trial"] = per_trial
            row["normals_per_s"] = row["layer_props_per_s"] * per_trial / case.depth
            row["of_rng_bound"] = paired(timer, timers["rng"], per_trial / case.depth)
        rows.append(row)
    if "matmul" in timers:
        rows.append({"case": case.label, "engine": "matmul",
                     "gflops": float(np.median(timers["matmul"].rates())),
                     "range": _spread(timers["matmul"].rates()),
                     "shape": [case.k, case.width, case.width]})
    if "rng" in timers:
        rows.append({"case": case.label, "engine": "rng", "count": max(draws),
                     "normals_per_s": float(np.median(timers["rng"].rates())),
                     "range": _spread(timers["rng"].rates())})
    return rows


SMALL_CALL = (64, 4, 100, 20_000)  # width, depth, trials of a small call and of a big one
# small-call rounds per round of the bench: one lasts about 50 ms, and with 5 the median
# swung 1.7x-2.2x between runs on a quiet 2-core VM
SMALL_ROUNDS = 5


def small_calls(repeats: int, calls: int = 20, shape=SMALL_CALL) -> dict:
    """The cost of a small ``simulate`` call against its share of a big one.

    What a library calling fastvar in a loop pays per call: each round times ``calls`` small
    calls (their median) and one big call, interleaved, on a network of the default
    options (the engine "auto" picks); a round's ratio is the small call's seconds over
    small / big of the big call's.

    Parameters
    ----------
    repeats : int
        The bench's rounds: SMALL_ROUNDS times as many rounds are timed here.
    calls : int
        Small calls per round.
    shape : tuple of int
        (width, depth, small trials, big trials).

    Returns
    -------
    dict
        A row: ``case``, ``engine`` ("small calls"), ``trials`` (small, big), ``seconds`` and
        ``big_seconds`` (median, min, max of the rounds) and ``ratio`` (likewise).
    """
    width, depth, small, big = shape
    net = mlp(width, depth)

    def once(trials: int) -> float:
        return _time_run(net, trials, "auto", 1)  # simulate's defaults

    small_timer = Timer(lambda: float(np.median([once(small) for _ in range(calls)])), small)
    big_timer = Timer(lambda: once(big), big)
    once(small)
    once(big)  # compiled (or loaded) before any timing
    interleave({"small": small_timer, "big": big_timer}, SMALL_ROUNDS * repeats)
    return {"case": f"w{width} d{depth} {net.activation}", "engine": "small calls",
            "trials": [small, big], "seconds": _spread(small_timer.seconds),
            "big_seconds": _spread(big_timer.seconds),
            "ratio": paired(big_timer, small_timer)}  # per trial: small's over big's


def matmul_gflops(case: Case, seconds: float, repeats: int) -> float:
    """Median GFLOP/s of numpy.matmul for (k x m) @ (m x n) at the case's shapes.

    Parameters
    ----------
    case : Case
        The case.
    seconds : float
        Target seconds per call.
    repeats : int
        Timed calls.

    Returns
    -------
    float
    """
    timer = matmul_timer(case, seconds)
    interleave({"matmul": timer}, repeats)
    return float(np.median(timer.rates()))


def _half_range(spread: dict) -> float:
    # the range of a figure as +- half of it, a fraction of the median
    return 0.5 * (spread["max"] - spread["min"]) / spread["median"]


def _pct(spread: dict) -> str:
    return f"{100 * _half_range(spread):.0f}%"


NOISY = 0.5  # a figure whose rounds spread more than +- this fraction of its median


def noise_note(rows: "list[dict]", load: float) -> "str | None":
    """The warning printed under the table when some figure spread too much to be used.

    Parameters
    ----------
    rows : list of dict
        The bench's rows; those with a ``range`` (median, min, max over the rounds) count.
    load : float
        The 1-minute load average at the end of the run.

    Returns
    -------
    str or None
        None when every figure's half range is within ``NOISY`` of its median.
    """
    spreads = [_half_range(row["range"]) for row in rows
               if "range" in row and row["range"]["median"] > 0]
    widest = max(spreads, default=0.0)
    if widest <= NOISY:
        return None
    return (f"fastvar bench: warning: some figures spread up to +-{100 * widest:.0f}% between "
            f"rounds (load {load:.1f}): other work on the machine slowed some rounds; such "
            "figures (and their ratios) say little: rerun when the machine is idle")


def _num(x: float) -> str:
    # a ratio: 3 significant digits, whole numbers from 100 up
    return f"{x:.0f}" if x >= 100 else f"{x:.3g}"


LABEL = 34  # characters of the case column: the longest case label (lines fit 100 columns)


def _print_rows(rows, file) -> None:
    for row in rows:
        label, name = row["case"], row["engine"]
        if "skipped" in row:
            print("\n".join(_text.wrapped(f"{label:{LABEL}s} {name:7s} ",
                                           f"skipped: {row['skipped']}")), file=file)
        elif name == "matmul":
            print(f"{label:{LABEL}s} {name:7s} {row['gflops']:10.1f} {_pct(row['range']):>5s}"
                  f"  GFLOP/s (matmul {row['shape'][0]}x{row['shape'][1]} @ "
                  f"{row['shape'][1]}x{row['shape'][2]})", file=file)
        elif name == "small calls":
            small, big = row["trials"]
            spread, ratio = row["seconds"], row["ratio"]
            print(f"{label:{LABEL}s} small calls: {small} trials take {1e3 * spread['median']:.2f}"
                  f" ms [{1e3 * spread['min']:.2f}-{1e3 * spread['max']:.2f}], "
                  f"{ratio['median']:.2f}x [{ratio['min']:.2f}-{ratio['max']:.2f}] their share "
                  f"of a {big:,}-trial call", file=file)
        elif name == "rng":
            print(f"{label:{LABEL}s} {name:7s} {row['normals_per_s']:10.3g} "
                  f"{_pct(row['range']):>5s}  normals/s, bank_normal, {row['count']} a call",
                  file=file)
        else:
            ratio = row.get("vs_numpy")
            text = (f"{_num(ratio['median']):>5s}x [{_num(ratio['min'])}-{_num(ratio['max'])}]"
                    if ratio else "")
            extra = f" {row['gflops']:6.1f}" if "vs_matmul" in row else ""
            print(f"{label:{LABEL}s} {name:7s} {row['layer_props_per_s']:10.4g} "
                  f"{_pct(row['range']):>5s} {text:16s}{extra}", file=file, flush=True)
            if "vs_exact" in row:
                share = row["vs_exact"]
                print(f"{'':8s} with histograms: {100 * share['median']:.0f}% "
                      f"[{100 * share['min']:.0f}-{100 * share['max']:.0f}] of the exact "
                      "engine's speed without", file=file)
            if "of_rng_bound" in row:
                bound = row["of_rng_bound"]
                print(f"{'':8s} {row['normals_per_s']:10.3g}  normals/s consumed "
                      f"({row['normals_per_trial']:g} a trial): {100 * bound['median']:.0f}% "
                      f"[{100 * bound['min']:.0f}-{100 * bound['max']:.0f}] of the RNG bound",
                      file=file)


def _load() -> float:
    # the 1-minute load average (other work on the machine slows the engines down)
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def run_bench(quick: bool = False, json_out: bool = False, cases=None, engines=None,
              seconds: "float | None" = None, repeats: "int | None" = None,
              file=None, small: "bool | None" = None) -> list[dict]:
    """Run the benchmark, print a table (or JSON) to ``file``, return the rows.

    Parameters
    ----------
    quick : bool
        Three cases and shorter timings.
    json_out : bool
        Print JSON (meta and rows) instead of the table.
    cases : sequence of Case or None
        Cases (default: the standard or quick ones).
    engines : sequence of str or None
        Engines (default: those supporting each case).
    seconds : float or None
        Target seconds per timed call.
    repeats : int or None
        Rounds.
    file : file-like or None
        Where to print (default: stdout).
    small : bool or None
        Also time small calls against their share of a big one (:func:`small_calls`);
        default: with the standard cases, not with ``cases`` given.

    Returns
    -------
    list of dict
        One row per case and engine (and one for the small calls).
    """
    file = sys.stdout if file is None else file
    small = cases is None if small is None else small
    cases = (QUICK if quick else STANDARD) if cases is None else cases
    seconds = (0.3 if quick else 0.5) if seconds is None else seconds
    repeats = REPEATS if repeats is None else repeats
    load = _load()
    start = time.perf_counter()
    if not json_out:
        print(f"fastvar bench: numba threads {numba.get_num_threads()}, load {load:.1f}; "
              f"{repeats} rounds of ~{seconds:g} s per engine, interleaved", file=file)
        print("median layer propagations/s (forward + backward) +- half its range; ratios: "
              "median [range]", file=file)
        print(f"{'case':{LABEL}s} {'engine':7s} {'median':>10s} {'+-':>5s} {'vs numpy':16s} "
              f"{'GFLOP/s':>6s}", file=file)
    rows = []
    for i, case in enumerate(cases):
        names = [e for e in engines_for(case) if engines is None or e in engines or e == "numpy"]
        case_rows = run_case(case, names, seconds, repeats, bound=i == 0)
        rows.extend(case_rows)
        if not json_out:
            _print_rows(case_rows, file)
    if small:
        rows.append(small_calls(repeats))
        if not json_out:
            _print_rows(rows[-1:], file)
    if json_out:
        meta = {"threads": numba.get_num_threads(), "seconds": seconds, "repeats": repeats,
                "load": load, "cases": [asdict(c) for c in cases],
                "elapsed_s": time.perf_counter() - start}
        print(json.dumps({"meta": meta, "rows": rows}, indent=1), file=file)
    else:
        end_load = _load()
        print(f"took {time.perf_counter() - start:.0f} s; load {load:.1f} at the start, "
              f"{end_load:.1f} at the end", file=file)
        note = noise_note(rows, end_load)
        if note:
            print("\n".join(_text.wrapped("", note)), file=file)
    return rows


def dask_scaling(work_seconds: float = 20.0, repeats: int = 2, file=None) -> dict:
    """A long run on local threads, on a 1-worker and a 2-worker Dask LocalCluster.

    The run (w64 d4 tanh, direct engine) is sized to take about ``work_seconds`` on one
    local thread. Each setting keeps the best of ``repeats`` timed calls, after an untimed
    call that starts the workers and loads the kernels. The per-task overhead is (1-worker
    time - 1-thread time) / tasks: scheduling, shipping the per-block stats back and the
    in-order merge. Returns seconds per setting, speed-ups, tasks, overhead (s and fraction
    of a task).

    Parameters
    ----------
    work_seconds : float
        Seconds the run takes on one local thread.
    repeats : int
        Timed calls per setting.
    file : file-like or None
        Where to print.

    Returns
    -------
    dict
        The figures above.
    """
    from distributed import Client, LocalCluster

    from . import dask_runner
    from .runs import Run

    file = sys.stdout if file is None else file
    net = mlp(64, 4, activation="tanh", init="lecun")
    trials = 1 << 14
    with numba_threads(1):
        api.simulate(net, trials, engine="direct")  # compile or load the cache
        took = _best(lambda: api.simulate(net, trials, seed=1, engine="direct"), 1)
    trials = int(trials * work_seconds / took)
    run = lambda **kw: api.simulate(net, trials, seed=1, engine="direct", **kw)  # noqa: E731
    times = {}
    for threads in (1, numba.get_num_threads()):
        with numba_threads(threads):
            times[f"local {threads} thread(s)"] = _best(run, repeats)
    request, engine = api.plan(net, trials, engine="direct")
    tasks = {}
    for workers in (1, 2):
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            api.simulate(net, 256, engine="direct", client=client)  # start and warm workers
            times[f"dask {workers} worker(s)"] = _best(lambda: run(client=client), repeats)
            tasks[workers] = len(dask_runner.task_pieces([Run(request, engine)], 1, workers))
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


def dask_sweeps(repeats: int = 3, file=None) -> dict:
    """Sweeps on a LocalCluster of 2 workers x 1 thread against one local thread.

    Two sweeps: 32 configurations (init x bias_std; tanh, width 128, depth 20, 1 000 trials
    each) and 1 000 tiny ones (width 4, depth 2, 8 trials each), whose time is nearly all
    per-configuration overhead. An untimed first call of each starts the workers and loads
    the kernels; then ``repeats`` rounds alternate the local and the cluster sweeps, so
    that the machine's load hits both alike. Prints and returns the median and range of
    each time, of the rounds' speed-ups, and of the seconds per tiny configuration.

    Parameters
    ----------
    repeats : int
        Rounds.
    file : file-like or None
        Where to print.

    Returns
    -------
    dict
        The figures above.
    """
    import warnings

    from distributed import Client, LocalCluster

    from .sweeps import sweep

    file = sys.stdout if file is None else file
    cases = {
        "32 configurations": ({"init": [1.0 + 0.2 * i for i in range(8)],
                               "bias_std": [0.0, 0.1, 0.2, 0.3]}, 1000,
                              dict(width=128, depth=20, activation="tanh")),
        "1000 tiny configurations": ({"init": [0.5 + 0.05 * i for i in range(40)],
                                      "bias_std": [0.02 * i for i in range(25)]}, 8,
                                     dict(width=4, depth=2, activation="tanh"))}
    times: dict[str, list[float]] = {}
    loads = [_load()]

    def timed(name: str, client=None) -> float:
        grid, trials, fixed = cases[name]
        tick = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # 8 trials make unreliable SEs, and say so
            sweep(grid, trials, seed=1, client=client, **fixed)
        return time.perf_counter() - tick

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        for rounds in range(repeats + 1):  # round 0 starts the workers, loads the kernels
            for name in cases:
                with numba_threads(1):
                    local = timed(name)
                remote = timed(name, client)
                if rounds:
                    times.setdefault(f"{name}, local 1 thread", []).append(local)
                    times.setdefault(f"{name}, dask 2 x 1", []).append(remote)
    loads.append(_load())
    big, tiny = list(cases)
    speedups = [a / b for a, b in zip(times[f"{big}, local 1 thread"],
                                      times[f"{big}, dask 2 x 1"])]
    per_tiny = {where: [t / 1000 for t in times[f"{tiny}, {where}"]]
                for where in ("dask 2 x 1", "local 1 thread")}
    out = {"seconds": {k: _spread(v) for k, v in times.items()},
           "speedup_32": _spread(speedups),
           "seconds_per_tiny_configuration": {k: _spread(v) for k, v in per_tiny.items()},
           "load": loads, "repeats": repeats}
    print(f"fastvar bench --dask sweeps: LocalCluster 2 workers x 1 thread vs one local "
          f"thread; median [min-max] of {repeats} interleaved rounds; load {loads[0]:.1f} at "
          f"the start, {loads[1]:.1f} at the end", file=file)
    for name, spread in out["seconds"].items():
        print(f"  {name:40s} {spread['median']:7.2f} s [{spread['min']:.2f}-"
              f"{spread['max']:.2f}]", file=file)
    speed = out["speedup_32"]
    print(f"  {big} (tanh w128 d20, 1 000 trials): {speed['median']:.2f}x faster on the "
          f"cluster [{speed['min']:.2f}-{speed['max']:.2f}]", file=file)
    for where, spread in out["seconds_per_tiny_configuration"].items():
        print(f"  {tiny} (w4 d2, 8 trials), {where}: {1e3 * spread['median']:.1f} ms per "
              f"configuration [{1e3 * spread['min']:.1f}-{1e3 * spread['max']:.1f}]", file=file)
    return out


def _best(call, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - tick)
    return best


def main(argv: "list[str] | None" = None) -> int:
    """``python -m fastvar.bench [--quick] [--json]``: ``fastvar bench``.

    Parameters
    ----------
    argv : list of str or None
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status.
    """
    from .cli import main as cli_main

    return cli_main(["bench"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
