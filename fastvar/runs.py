"""A run in progress: completed block ranges merged in block order, saved and shown.

An engine turns a range of blocks into per-block stats, and a block's stats depend only on
(plan, seed, block). :class:`Run` takes completed ranges in any order (local threads give
them in order, Dask workers do not), folds them into the running total strictly in block
order, so every runner gives bitwise the same result, saves them to a checkpoint and moves
the progress bar. :func:`run_local` is the runner of this process; the Dask runner is in
:mod:`fastvar.dask_runner`.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time

import numba
import numpy as np

from .checkpoint import Checkpoint, digest, fingerprint
from .engines.base import Engine, Plan
from .kernels.accumulators import ROWS, STATS_SIZE, merge_blocks, new_stats
from .kernels.codes import INPUTS_NORMAL, INPUTS_PAIR
from .results import Result
from .results.histogram import split_stats
from .results.jacobian import split_jacobian

CHUNK_SECONDS = 0.25  # local runs: a progress update / Ctrl-C check about this often
_MAX_CHUNK_BLOCKS = 4096
_CHUNK_STATS_BYTES = 1 << 28  # cap on the per-block stats of one chunk (deep networks)


def chunk_cap(depth: int, rows: int = ROWS) -> int:
    """The most blocks one engine call may compute.

    Parameters
    ----------
    depth : int
        Layers L of the network.
    rows : int
        Stats rows per layer (``ROWS`` without histograms, more with them).

    Returns
    -------
    int
        At least 1, at most 4096 blocks, whose per-block stats (L x ``rows`` x 128 bytes
        each) stay under 256 MiB.
    """
    return int(max(1, min(_MAX_CHUNK_BLOCKS,
                          _CHUNK_STATS_BYTES // (depth * 8 * rows * STATS_SIZE))))
SAVE_SECONDS = 1.0  # at most one checkpoint write (with fsync) a second: a kill costs <= 1 s


_stops = threading.local()  # .event: stop this thread's local run (see stop_when)


@contextlib.contextmanager
def stop_when(event: threading.Event):
    """Within this block, a local :func:`fastvar.simulate` (no Dask client) on this thread
    stops between two chunks (about ``CHUNK_SECONDS``) once ``event`` is set, raising
    :class:`~fastvar.interrupts.Interrupted` as Ctrl-C would: a cancellation from another
    thread that needs no asynchronous exception (``fastvar serve`` stops the run of a client
    that went away).

    Parameters
    ----------
    event : threading.Event
        Set (from any thread) to stop the run.

    Yields
    ------
    threading.Event
        ``event`` itself.
    """
    before, _stops.event = getattr(_stops, "event", None), event
    try:
        yield event
    finally:
        _stops.event = before


def _check_stop() -> None:
    event = getattr(_stops, "event", None)
    if event is not None and event.is_set():
        raise KeyboardInterrupt


class Run:
    """The in-order merge of one request's blocks, resumed from ``checkpoint`` if given.

    Blocks are added in any order (:meth:`add`); those beyond the merged prefix wait until
    the gap before them is filled, so the merged stats are bitwise those of an in-order run.

    Parameters
    ----------
    request : Plan
        The planned request.
    engine : Engine
        The engine running its blocks.
    checkpoint : Checkpoint or None
        Load the work saved there first, and save to it as blocks complete.
    progress : bool
        Show a tqdm progress bar on stderr.
    compile_s : float
        Seconds spent compiling the kernels, kept in the Result.
    """

    def __init__(self, request: Plan, engine: Engine, *, checkpoint: "Checkpoint | None" = None,
                 progress: bool = False, compile_s: float = 0.0) -> None:
        self.request, self.engine, self.checkpoint = request, engine, checkpoint
        self.compile_s = compile_s
        self.start = time.perf_counter()
        # seconds of the engine calls of the blocks added, where a runner measures them
        # (fastvar.dask_runner: on the workers); a sweep's configurations share the
        # cluster's wall time, so each one's Result reports this as its elapsed_s
        self.task_s = 0.0
        if checkpoint is None:
            done, total, ranges = 0, new_stats(request.network.depth,
                                               rows=request.stats_rows), {}
        else:
            done, total, ranges = checkpoint.load()
            loaded = done + sum(len(s) for s in ranges.values())
            if loaded:
                logging.getLogger("fastvar").info(
                    f"fastvar: resumed {loaded} of {request.blocks} blocks from {checkpoint.path}")
        # (blocks merged, their merged stats (L, ROWS, S)) replaced by one store, so that a
        # KeyboardInterrupt landing anywhere leaves a consistent pair for Interrupted.result
        self._state = (done, total)
        self._pending = dict(ranges)  # first block -> per-block stats (count, L, ROWS, S)
        self._saved, self._last_save = done, self.start
        self._bar = None
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=request.trials, unit="trial", unit_scale=True,
                             desc=f"fastvar[{engine.name}]")
        self._shown = done + sum(len(s) for s in ranges.values())  # blocks on the bar
        self._show()
        self._fold()

    @functools.cached_property
    def digest(self) -> str:
        """The request's digest (the checkpoint's, or that of its fingerprint): computed on
        first use, which a local run without a checkpoint never makes."""
        if self.checkpoint is not None:
            return self.checkpoint.digest
        return digest(fingerprint(self.request, self.engine.name))

    @property
    def done(self) -> int:
        """Blocks merged: the completed prefix 0 .. done - 1."""
        return self._state[0]

    def _trials(self, blocks: int) -> int:
        networks = min(blocks * self.request.networks_per_block, self.request.networks)
        return networks * self.request.inputs_per_network

    def missing(self) -> list[tuple[int, int]]:
        """The blocks still to compute.

        Returns
        -------
        list of (int, int)
            (first block, number of blocks) of each interval, in block order.
        """
        out, at = [], self.done
        for first in sorted(self._pending):
            if first > at:
                out.append((at, first - at))
            at = max(at, first + len(self._pending[first]))
        if at < self.request.blocks:
            out.append((at, self.request.blocks - at))
        return out

    def add(self, first: int, stats: np.ndarray) -> None:
        """Take the stats of a range of completed blocks, in any order.

        Parameters
        ----------
        first : int
            The first block of the range.
        stats : float64 array, shape (count, L, ROWS, S)
            Per-block stats of blocks first .. first + count - 1, as an engine's ``run``
            returns them.
        """
        if self.checkpoint is not None and first != self.done:
            self.checkpoint.save_range(first, stats)  # out of order: kept until folded
        self._pending[first] = stats
        self._shown += len(stats)
        self._show()
        self._fold()
        self.save()

    def _fold(self) -> None:
        done, total = self._state
        if done not in self._pending:
            return
        merged = total.copy()
        while done in self._pending:
            stats = self._pending[done]
            merge_blocks(merged, stats)
            done += len(stats)
        self._state = (done, merged)
        for first in [f for f in self._pending if f < done]:
            del self._pending[first]

    def _show(self) -> None:
        if self._bar is not None:
            self._bar.update(self._trials(self._shown) - self._bar.n)

    def save(self, force: bool = False) -> None:
        """Write the completed prefix to the checkpoint if it grew since the last save.

        Then drop the range files the prefix now holds. Without a checkpoint, nothing.

        Parameters
        ----------
        force : bool, optional
            Save now; otherwise at most once every ``SAVE_SECONDS`` (1 s) until the last
            block is in.
        """
        done, total = self._state
        now = time.perf_counter()
        if self.checkpoint is None or done == self._saved:
            return
        if not force and done < self.request.blocks and now - self._last_save < SAVE_SECONDS:
            return
        self.checkpoint.save_prefix(done, total)
        self.checkpoint.drop_ranges_below(done)
        self._saved, self._last_save = done, now

    def result(self, elapsed_s: "float | None" = None) -> "Result | None":
        """The Result of the blocks merged so far.

        Parameters
        ----------
        elapsed_s : float, optional
            The Result's ``elapsed_s``, in seconds; by default the wall time since the run
            began.

        Returns
        -------
        Result or None
            The Result of the completed prefix of blocks (``partial`` unless every block
            is in); None if no block is, or if the run, of fewer networks than one block,
            was cut into smaller blocks for the threads and is not complete.
        """
        done, total = self._state
        req = self.request
        # a run of fewer networks than one block, cut into smaller blocks for the threads,
        # is one piece: its first blocks are not the smaller run of that many trials
        if done == 0 or (done < req.blocks
                         and req.networks_per_block < self.engine.full_block(req)):
            return None
        wall = time.perf_counter() - self.start
        stats, jac = split_jacobian(total, req.jacobian)
        stats, counts = split_stats(stats)
        histograms = None if counts is None else (counts, req.histogram_scales)
        return Result(req.network, stats, trials=self._trials(done), seed=req.seed,
                      engine=self.engine.name, elapsed_s=wall if elapsed_s is None else elapsed_s,
                      compile_s=self.compile_s, inputs_per_network=req.inputs_per_network,
                      gradients=req.gradients, input_q0=req.input_q0,
                      input_q0_rows=req.input_q0_rows, input_correlation=req.correlation,
                      partial=done < req.blocks, histograms=histograms,
                      normal_inputs=req.inputs_kind in (INPUTS_NORMAL, INPUTS_PAIR),
                      jacobian=jac)

    def close(self) -> None:
        """Close the progress bar."""
        if self._bar is not None:
            self._bar.close()


def run_local(run: Run) -> None:
    """Compute the missing blocks of a run in this process.

    Blocks go to the engine in chunks of about ``CHUNK_SECONDS`` (0.25 s) of work, which it
    spreads over the numba threads; between chunks the progress bar moves and Ctrl-C (or a
    :func:`stop_when` event) lands. A run the cost model puts under that is one chunk.

    Parameters
    ----------
    run : Run
        The run; its blocks are added to it in block order.
    """
    request = run.request
    cap = chunk_cap(request.network.depth, request.stats_rows)
    threads = max(1, numba.get_num_threads())
    # a run the cost model puts under CHUNK_SECONDS goes in one engine call (one launch of
    # the thread pool); a longer one starts with a block per thread, whatever the model says
    wall = run.engine.seconds_per_network(request) * request.networks / min(threads,
                                                                            request.blocks)
    chunk = min(cap, request.blocks if wall <= CHUNK_SECONDS else threads)
    for first, count in run.missing():
        end = first + count
        while first < end:
            _check_stop()
            n = min(chunk, end - first)
            tick = time.perf_counter()
            run.add(first, run.engine.run(run.request, first, n))
            first += n
            took = time.perf_counter() - tick
            chunk = int(min(4 * chunk, max(1, chunk * CHUNK_SECONDS / max(took, 1e-6)), cap))
