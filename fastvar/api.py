"""simulate(): validate a request, plan its blocks, pick an engine, merge in block order."""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import threading
import time
import warnings

import numba
import numpy as np

from ._checks import check_int, check_real, shown
from ._threads import numba_threads, reused_briefly
from .engines import base
from .engines.costs import (HIST_NS_PER_VALUE, THEORY_NODES, THEORY_NS_PER_LAYER,
                            THEORY_NS_PER_NODE)
from .checkpoint import Checkpoint
from .kernels.accumulators import HIST_QUANTITIES, HIST_SLOTS, STATS_SIZE
from .network import Network
from .options import (EXECUTION_OPTIONS, RUN_OPTIONS, Execution, RunOptions, split_options,
                      takes_options)
from .results import IncompleteStatisticsWarning, Result
from .results.histogram import bin_scales, check_size
from .interrupts import ClientClosed, Interrupted
from .runs import Run, chunk_cap, run_local

MAX_TRIALS = 1 << 50
# A block runs uninterrupted (Ctrl-C waits for it): refuse networks that alone take minutes.
MAX_WORK_PER_NETWORK = 2.0 ** 36
MAX_SECONDS = 365.25 * 86400  # refuse runs estimated to take longer (wall clock, all threads)


class TooLong(ValueError):
    """A run estimated to take longer than :data:`MAX_SECONDS` (about a year), refused up
    front; a ValueError, so that callers that catch those still do."""


@dataclasses.dataclass(frozen=True)
class Estimate:
    """What a run will cost, from the engines' calibrated rates (see :func:`estimate`).

    Attributes
    ----------
    engine : str
        The engine that would run the request.
    seconds : float
        Wall-clock seconds with ``threads`` numba threads, the theory step included
        (core-seconds divided by the threads the blocks can use).
    threads : int
        The numba threads the blocks can use (at most the number of blocks).
    memory_bytes : int
        Peak working memory in bytes, beyond the Python process itself.
    """

    engine: str
    seconds: float
    threads: int
    memory_bytes: int

    def describe(self) -> str:
        """The estimate in words.

        Returns
        -------
        str
            E.g. ``'about 3.2 hours on engine exact (2 threads)'``: the time in the largest unit
            it spans twice (seconds, minutes, hours, days, years).
        """
        value, unit = self.seconds, "seconds"
        for size, name in ((60, "minutes"), (60, "hours"), (24, "days"), (365.25, "years")):
            if value < 2 * size:
                break
            value, unit = value / size, name
        threads = f"{self.threads} thread{'s' if self.threads > 1 else ''}"
        number = f"{value:.2g}" if value < 100 else f"{value:.0f}"  # not 1e+02
        return f"about {number} {unit} on engine {self.engine} ({threads})"


def _cost(request: base.Plan, chosen: base.Engine, threads: int) -> Estimate:
    """Time and memory of ``request`` on ``chosen`` with ``threads`` numba threads."""
    depth = request.network.depth
    used = min(threads, request.blocks) if chosen.parallel else 1
    rows = request.input_q0_rows
    nodes = 0 if rows is None else min(THEORY_NODES, rows[0].size)
    theory = 1e-9 * depth * (THEORY_NS_PER_LAYER + THEORY_NS_PER_NODE * nodes)
    seconds = chosen.seconds_per_network(request) * request.networks / used + theory
    if request.histograms:  # z, a (and delta) of every unit counted
        values = request.trials * sum(request.network.widths[1:]) * (
            3 if request.gradients else 2)
        seconds += 1e-9 * HIST_NS_PER_VALUE * values / used
    chunk = min(request.blocks, chunk_cap(depth, request.stats_rows))
    # merged and per-chunk stats (histogram rows included); ~25 result columns and their
    # temporaries; the theory's maps (one column per node)
    per_layer = (8 * request.stats_rows * STATS_SIZE * (1 + chunk) + 8 * 50
                 + 8 * 8 * max(nodes, 1))
    memory = chosen.memory_bytes(request) + depth * per_layer
    if request.histograms:  # each thread's counts, and scratch for the widest layer's values
        memory += 8 * numba.config.NUMBA_NUM_THREADS * (
            depth * HIST_QUANTITIES * HIST_SLOTS
            + request.inputs_per_network * max(request.network.widths))
    return Estimate(chosen.name, seconds, used, int(memory))


def _inputs(inputs, n0: int) -> tuple[int, np.ndarray, float, "tuple | None"]:
    """(kind, data rows (r, n0), mean squared input entry q0, per-row lengths) from
    ``inputs``; the per-row lengths are (sorted distinct ||x_i||^2 / n0, row counts), or
    None for fresh normal inputs and a single input."""
    if isinstance(inputs, str):
        if inputs != "normal":
            raise ValueError("inputs must be 'normal', a 1-D input vector or a 2-D data set, "
                             f"got {inputs!r}")
        return base.INPUTS_NORMAL, np.zeros((0, n0)), 1.0, None
    arr = np.asarray(inputs)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"inputs must be an array of real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != n0 or arr.shape[0] == 0:
        raise ValueError(f"inputs must have shape ({n0},) or (rows, {n0}) to match the input width "
                         f"{n0}, got {np.shape(inputs)}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"inputs hold {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    with np.errstate(over="ignore"):
        squares = arr * arr
        q0 = float(np.mean(squares))
    if not np.isfinite(q0):
        raise ValueError("inputs are so large that their squares overflow; rescale them")
    row_q0 = np.mean(squares, axis=1)
    # a row whose squares underflow would enter as q0 = 0 (or a subnormal, digits lost), and
    # every statistic would read a clean 0 +- 0: refuse it as an overflow is refused
    lost = (row_q0 < np.finfo(np.float64).tiny) & (np.abs(arr).max(axis=1) > 0.0)
    if lost.any():
        row = int(np.argmax(lost))
        raise ValueError(f"inputs are so small that their squares underflow (row {row}: largest "
                         f"|x| is {float(np.abs(arr[row]).max()):.3g}, mean square below "
                         "2.2e-308); rescale them")
    rows = None
    if arr.shape[0] > 1:  # the theory averages its maps over the rows' own lengths
        rows = np.unique(row_q0, return_counts=True)
    return base.INPUTS_DATA, arr, q0, rows


def _pairs(correlation, kind: int, data: np.ndarray, k: "int | None") -> tuple[int, float, int]:
    """(inputs kind, c0, inputs per network) for the ``correlation`` argument."""
    if correlation is None:
        return kind, float("nan"), 1 if k is None else k
    if k is not None and k != 2:
        raise ValueError(f"correlation feeds each network a pair of inputs, so inputs_per_network "
                         f"is 2; leave it out (got {k})")
    if isinstance(correlation, str):
        if correlation != "rows":
            raise ValueError("correlation must be a number in [-1, 1] or 'rows', "
                             f"got {correlation!r}")
        if kind != base.INPUTS_DATA or data.shape[0] < 2:
            raise ValueError("correlation='rows' pairs two distinct rows of a data set: pass "
                             "inputs as a 2-D array with at least 2 rows")
        norms = np.sqrt(np.einsum("ij,ij->i", data, data))
        if not (norms > 0).all():
            raise ValueError(f"correlation='rows' needs rows of non-zero length (the cosine of a "
                             f"zero row is undefined); row {int(np.argmin(norms))} is all zeros")
        # the mean cosine over pairs of distinct rows: (||sum of unit rows||^2 - R) / (R (R - 1))
        total = (data / norms[:, None]).sum(axis=0)
        rows = data.shape[0]
        c0 = float((total @ total - rows) / (rows * (rows - 1.0)))
        return base.INPUTS_ROW_PAIR, min(1.0, max(-1.0, c0)), 2
    c0 = check_real("correlation", correlation, -1.0, strict=False)
    if c0 > 1.0:
        raise ValueError(f"correlation must be in [-1, 1], got {shown(c0)}")
    if kind != base.INPUTS_NORMAL:
        raise ValueError("correlation=c0 pairs fresh N(0, I) inputs (inputs='normal'); with a "
                         "data set use correlation='rows' (two distinct rows per network)")
    return base.INPUTS_PAIR, c0, 2


@reused_briefly
def _available_memory() -> int:
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 34


def _check_jacobian(net: Network, options: RunOptions) -> None:
    """ValueError, before any work, for what ``jacobian=True`` does not measure."""
    if options.correlation is not None:
        raise ValueError("jacobian=True measures one input's Jacobian at a time; leave out "
                         "correlation (run the two studies separately)")
    if net.alpha or net.norm is not None:
        raise ValueError("jacobian=True supports plain networks only (no residual stream "
                         "alpha, no norm): their Jacobian and its theory are not implemented")


def plan_run(net: Network, trials: int, options: RunOptions) -> tuple[base.Plan, base.Engine]:
    """:func:`plan` with the run options already gathered in a :class:`RunOptions`.

    Parameters
    ----------
    net : Network
        The architecture and initialization.
    trials : int
        Number of forward passes, 1 <= trials <= 2**50.
    options : RunOptions
        The run options (seed, engine, inputs, ...), each already checked on its own.

    Returns
    -------
    request : Plan
        The validated request, its blocks sized for the chosen engine.
    engine : Engine
        The engine that will run it.

    Raises
    ------
    TypeError, ValueError
        An argument out of range, or inputs, pairs and trials that do not fit the network.
    MemoryError
        The engine would need more than half the free memory.
    """
    if not isinstance(net, Network):
        raise TypeError("net must be a fastvar.Network (see fastvar.mlp), "
                        f"got {type(net).__name__}")
    trials = check_int("trials", trials, 1, MAX_TRIALS)
    kind, data, q0, rows = _inputs(options.inputs, net.widths[0])
    kind, c0, k = _pairs(options.correlation, kind, data, options.inputs_per_network)
    if trials % k:
        what = ("with correlation each network runs a pair of inputs, so trials must be even"
                if options.correlation is not None
                else "trials must be a multiple of inputs_per_network")
        raise ValueError(f"{what} (got trials={trials}, inputs_per_network={k})")
    seed = options.seed
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1, np.uint64)[0])
    scales = None
    if options.histograms:
        check_size(trials, net.widths)
        scales = bin_scales(net, q0, rows, options.gradients)
    if options.jacobian:
        _check_jacobian(net, options)
    fields = dict(network=net, trials=trials, seed=seed, inputs_kind=kind, data=data,
                  inputs_per_network=k, gradients=options.gradients, input_q0=q0,
                  input_q0_rows=rows, correlation=c0, histogram_scales=scales,
                  jacobian=options.jacobian)
    request = base.Plan(**fields)
    chosen = base.choose(options.engine, request)
    # built again, not dataclasses.replace'd: that costs 5 times as much, in every call
    request = base.Plan(**fields, networks_per_block=chosen.networks_per_block(request))
    work = chosen.work_per_network(request)
    if work > MAX_WORK_PER_NETWORK:
        hint = ("" if chosen.name == "exact" else " or fewer layers (the Jacobian costs O(L n^3))"
                if options.jacobian else " or engine='exact' (normal weights)")
        raise ValueError(f"one network of this size costs about {work:.2g} steps on engine "
                         f"{chosen.name!r} (minutes that cannot be interrupted); use smaller "
                         f"widths{hint}")
    threads = numba.get_num_threads() if options.threads is None else options.threads
    cost = _cost(request, chosen, threads)
    if cost.seconds > MAX_SECONDS:
        raise TooLong(f"this run would take {cost.describe()}; use fewer trials, smaller "
                         "widths or fewer layers")
    have = _available_memory()
    if cost.memory_bytes > have // 2:
        raise MemoryError(f"engine {chosen.name!r} would need about {cost.memory_bytes / 2**30:.1f}"
                          f" GiB for this network (only {have / 2**30:.1f} GiB free); use smaller "
                          "widths, fewer layers, fewer inputs_per_network, or another engine")
    return request, chosen


@takes_options(RUN_OPTIONS)
def plan(net: Network, trials: int, **options) -> tuple[base.Plan, base.Engine]:
    """Validate a request and return its Plan and the engine that will run it.

    Takes the keywords of :func:`simulate` that fix the numbers (not ``progress``,
    ``checkpoint`` or ``client``). Refuses up front what would run longer than about a year
    (wall clock, with ``threads`` or all numba threads) or need more than half the free
    memory, by the calibrated :func:`estimate`.

    Parameters
    ----------
    net : Network
        The architecture and initialization (see :func:`fastvar.mlp`).
    trials : int
        Number of forward passes (and backward passes if ``gradients``).
    {options}

    Returns
    -------
    request : Plan
        The validated request (network, trials, seed, inputs, block size).
    engine : Engine
        The engine that will run it.

    Raises
    ------
    TypeError, ValueError
        An unknown keyword, or a value out of range, each named with what to change.
    MemoryError
        The engine would need more than half the free memory.
    """
    (run,) = split_options(options, [RUN_OPTIONS], "plan")
    return plan_run(net, trials, RunOptions(**run))


@takes_options(RUN_OPTIONS)
def estimate(net: Network, trials: int, **options) -> Estimate:
    """How long :func:`simulate` with these arguments will take and how much memory it needs.

    Calibrated on measured rates of each engine and of the theory step on a shared 2-core
    VM (see the engines' ``ns_per_step``); expect the right order of magnitude, within a
    factor of about 3 on a similar machine.

    Parameters
    ----------
    net : Network
        The architecture and initialization (see :func:`fastvar.mlp`).
    trials : int
        Number of forward passes (and backward passes if ``gradients``).
    {options}

    Returns
    -------
    Estimate
        Seconds (wall clock), threads and peak memory in bytes; ``.describe()`` says it in
        words.

    Raises
    ------
    TypeError, ValueError, MemoryError
        What :func:`simulate` would raise up front.

    Examples
    --------
    >>> import fastvar
    >>> fastvar.api.estimate(fastvar.mlp(256, 20), 10_000).engine
    'exact'
    """
    (run,) = split_options(options, [RUN_OPTIONS], "estimate")
    run = RunOptions(**run)
    request, chosen = plan_run(net, trials, run)
    return _cost(request, chosen, numba.get_num_threads() if run.threads is None else run.threads)


def _prepare(chosen: base.Engine, request: base.Plan, notice: bool) -> float:
    """Compile (or load from numba's cache) the engine's kernels for this request by running
    it on no blocks; returns the seconds it took, so that the run's own time excludes it.
    Called with the run's numba threads set: which kernels a run needs depends on them.
    A compile that lasts over a second is announced: on stderr with ``notice``, unless the
    ``fastvar`` logger has a level set (the command line sets one), which then decides.
    Kernels already compiled in this process cost nothing here: no timer thread (0.3-1 ms a
    call, which made the command line's small calls 1.5-3x slower than the API's)."""
    if chosen.ready(request):
        return 0.0
    log = logging.getLogger("fastvar")
    direct = notice and log.level == logging.NOTSET

    def announce():
        text = (f"fastvar: compiling the {chosen.name} engine's kernels once (about a minute on 2 "
                "cores); numba caches them")
        if direct:
            print(text, file=sys.stderr, flush=True)
        else:
            log.info(text)

    wanted = direct or log.isEnabledFor(logging.INFO)
    timer = threading.Timer(1.0, announce) if wanted else None
    tick = time.perf_counter()
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        chosen.prepare(request)
    finally:
        if timer is not None:
            timer.cancel()
    return time.perf_counter() - tick


@takes_options(RUN_OPTIONS, EXECUTION_OPTIONS)
def simulate(net: Network, trials: int, **options) -> Result:
    """Propagate ``trials`` random inputs through random networks; per-layer statistics.

    Parameters
    ----------
    net : Network
        The architecture and initialization (see :func:`fastvar.mlp`).
    trials : int
        Number of forward passes (and backward passes if ``gradients``).
    {options}

    Returns
    -------
    Result
        Per-layer columns (arrays of length L) with standard errors. Layers where values
        overflowed to NaN or infinity have ``complete`` False, and an
        :class:`~fastvar.results.IncompleteStatisticsWarning` says which.

    Raises
    ------
    Interrupted
        On Ctrl-C (a KeyboardInterrupt): its ``result`` holds the blocks completed so far,
        marked ``partial`` (see :class:`fastvar.Interrupted`).
    """
    run, execution = split_options(options, [RUN_OPTIONS, EXECUTION_OPTIONS], "simulate")
    return simulate_run(net, trials, RunOptions(**run), Execution(**execution), stacklevel=3)


def simulate_run(net: Network, trials: int, options: RunOptions,
                 execution: Execution = Execution(), stacklevel: int = 2) -> Result:
    """:func:`simulate` with its options gathered in a :class:`RunOptions` and an
    :class:`Execution`.

    Parameters
    ----------
    net : Network
        The architecture and initialization.
    trials : int
        Number of forward passes.
    options : RunOptions
        How the trials are drawn (seed, engine, inputs, ...).
    execution : Execution
        Where and how the run goes (progress bar, checkpoint folder, Dask client).
    stacklevel : int
        The frames up that the :class:`~fastvar.results.IncompleteStatisticsWarning` points to.

    Returns
    -------
    Result
        As :func:`simulate`.

    Raises
    ------
    Interrupted
        On Ctrl-C, with the blocks completed so far (see :func:`simulate`).
    """
    checkpoint, client, progress = execution.checkpoint, execution.client, execution.progress
    threads = options.threads
    if checkpoint is not None and options.seed is None:
        raise ValueError("checkpoint needs a fixed seed: seed=None draws a new one on every "
                         "call, so a rerun could never resume")
    if client is not None:
        from .dask_runner import check_client

        check_client(client)
        if threads is not None:
            raise ValueError("threads applies to local runs; with a Dask client each worker "
                             "uses its own threads (threads_per_worker)")
    request, chosen = plan_run(net, trials, options)
    store = None if checkpoint is None else Checkpoint(checkpoint, request, chosen.name)
    # a compile of about a minute deserves a word where someone watches: with a bar, or a terminal;
    # on a cluster the workers compile (see fastvar.dask_runner)
    # the kernels are chosen (and compiled if need be) for the threads the run will use
    with numba_threads(threads):
        try:
            compile_s = 0.0 if client is not None else _prepare(
                chosen, request, notice=progress or sys.stderr.isatty())
        except KeyboardInterrupt:
            raise Interrupted(None) from None
        run = Run(request, chosen, checkpoint=store, progress=progress, compile_s=compile_s)
        try:
            if client is None:
                run_local(run)
            else:
                from . import dask_runner

                dask_runner.run(client, run)
            run.save(force=True)
        except KeyboardInterrupt as stop:
            with contextlib.suppress(OSError):  # the work done so far matters more than the file
                run.save(force=True)
            raise (ClientClosed if isinstance(stop, ClientClosed) else Interrupted)(
                run.result()) from None
        finally:
            run.close()
    result = run.result()
    for line in result.warnings:
        warnings.warn(line, IncompleteStatisticsWarning, stacklevel=stacklevel)
    return result


def request_cost(request: base.Plan, chosen: base.Engine,
                 threads: "int | None" = None) -> Estimate:
    """The :class:`Estimate` of a request already planned by :func:`plan`.

    Parameters
    ----------
    request : Plan
        The planned request.
    chosen : Engine
        The engine that runs it.
    threads : int or None
        Numba threads (default: all of them).

    Returns
    -------
    Estimate
        Wall-clock seconds, threads used and peak memory in bytes.
    """
    return _cost(request, chosen, numba.get_num_threads() if threads is None else threads)
