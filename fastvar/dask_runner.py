"""Run a simulation on a Dask cluster: ranges of blocks become tasks, merged in block order.

``simulate(..., client=CLIENT)`` lands here. The missing blocks of the run are cut into
ranges of about ``fastvar.engines.costs.TASK_SECONDS`` of work (:func:`task_blocks`, by the
engine's calibrated ``seconds_per_network``); each range is one ``Client.submit`` task with
an explicit key made of the request's digest and the range (``fastvar-<digest>-<first>-
<count>``), ``pure=True`` and ``retries``, and returns per-block stats (count, L, ROWS, S).
The client takes them with ``as_completed`` and hands them to :class:`fastvar.runs.Run`,
which merges strictly in block order: the result is bitwise that of a local run, for any
number of workers. A worker lost mid-run costs only its tasks, which the scheduler runs
again elsewhere (up to ``distributed.scheduler.allowed-failures`` times per task).

Workers: each gets ``NUMBA_NUM_THREADS`` = its ``threads_per_worker`` (unless set in its
environment), and one kernel call at a time uses them all (a per-worker lock: concurrent
parallel calls would oversubscribe the cores, and numba's workqueue layer refuses them).
The kernels are compiled (or loaded from numba's cache) on every worker before the tasks:
on one worker first, then on the others, so that workers sharing a cache folder (one
machine, or a shared file system) never race to write the same cache files.
"""
from __future__ import annotations

import dataclasses
import math
import threading
from typing import TYPE_CHECKING

from ._threads import numba_threads, threads_for_process

try:
    from distributed import WorkerPlugin
except ImportError:  # without Dask this module still imports; check_client says what to do
    WorkerPlugin = object

if TYPE_CHECKING:  # the workers unpickle this module: it must not import numba before
    # threads_for_process has set NUMBA_NUM_THREADS
    from .engines.base import Engine, Plan
    from .runs import Run

TASKS_PER_WORKER = 4  # at least this many per worker, so workers finish close together
_LOCK = threading.Lock()  # one kernel call at a time per worker process


def check_client(client) -> None:
    """Check that ``client`` is a running dask.distributed Client.

    Parameters
    ----------
    client : object
        What ``simulate(client=...)`` was given.

    Raises
    ------
    ImportError
        Without dask.distributed installed (``pip install 'fastvar[dask]'``).
    TypeError
        If ``client`` is not a ``distributed.Client``.
    ValueError
        If the client is not running.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("simulate(client=...) needs dask.distributed: "
                          "pip install 'fastvar[dask]'") from None
    if not isinstance(client, Client):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    if client.status != "running":
        raise ValueError(f"the Dask client is not running (status {client.status!r})")


def task_blocks(request: "Plan", engine: "Engine", threads: int, workers: int) -> int:
    """The number of blocks per Dask task.

    Parameters
    ----------
    request : Plan
        The run's plan.
    engine : Engine
        Its engine, whose calibrated ``seconds_per_network`` sizes the tasks.
    threads : int
        Threads of a worker (one core counts for an engine that is not ``parallel``).
    workers : int
        Workers of the cluster.

    Returns
    -------
    int
        At least 1: about ``fastvar.engines.costs.TASK_SECONDS`` of work on one worker, and
        at least ``TASKS_PER_WORKER`` tasks per worker for runs that are short for the
        cluster.
    """
    from .engines.costs import TASK_SECONDS

    block_seconds = engine.seconds_per_network(request) * request.networks_per_block
    cores = max(1, threads) if engine.parallel else 1
    size = TASK_SECONDS * cores / max(block_seconds, 1e-9)
    fair = math.ceil(request.blocks / (TASKS_PER_WORKER * max(1, workers)))
    return max(1, int(min(size, fair)))


class NumbaThreads(WorkerPlugin):
    """Worker plugin (``Client.register_plugin``): on every worker, present and future,
    set NUMBA_NUM_THREADS to the worker's threads before anything imports numba (a task's
    arguments import it as they are unpickled, too late for the variable)."""

    name = "fastvar-numba-threads"

    def setup(self, worker) -> None:
        """Dask's hook, run as the plugin reaches a worker.

        Parameters
        ----------
        worker : distributed.Worker
            The worker; its ``nthreads`` become the process's numba threads.
        """
        threads_for_process(worker.state.nthreads)


def _compute(request: "Plan", engine: str, first: int, count: int, threads: int):
    from .engines import ENGINES

    use = threads_for_process(threads)
    # numba's thread count is per calling thread: set it in the one running the kernel
    with _LOCK, numba_threads(use):
        return ENGINES[engine].run(request, first, count)


def _warm(request: "Plan", engine: str, dask_worker=None) -> int:
    """client.run target: compile or load the kernels (one network); numba's threads."""
    import numba

    threads = dask_worker.state.nthreads if dask_worker is not None else 1
    _compute(request, engine, 0, 1, threads)
    return numba.config.NUMBA_NUM_THREADS


def _task(request: "Plan", engine: str, first: int, count: int):
    """One task: per-block stats (count, L, ROWS, S) of blocks first .. first + count - 1."""
    from distributed import get_worker

    return _compute(request, engine, first, count, get_worker().state.nthreads)


def _identity(request: "Plan") -> "Plan":
    return request


def warm_up(client, request: "Plan", engine: str) -> dict[str, int]:
    """Compile (or load) the kernels on every worker, one worker first.

    One worker first, so that workers sharing a numba cache folder never race to write it.
    A worker lost meanwhile is skipped: its successor compiles on its first task.

    Parameters
    ----------
    client : distributed.Client
        The cluster's client.
    request : Plan
        The run's plan (a one-network copy of it runs on each worker).
    engine : str
        The engine's name.

    Returns
    -------
    dict of str to int
        Each worker's address and its ``NUMBA_NUM_THREADS``.

    Raises
    ------
    RuntimeError
        If it fails on every worker (fastvar missing there, say), with the first error.
    """
    # one network (and at most two data rows) compiles the same kernels as the request
    tiny = dataclasses.replace(request, trials=request.inputs_per_network, data=request.data[:2])
    client.register_plugin(NumbaThreads(), name=NumbaThreads.name)
    workers = sorted(client.nthreads())
    answers: dict[str, object] = {}
    for group in (workers[:1], workers[1:]):
        if group:
            answers.update(client.run(_warm, tiny, engine, workers=group, on_error="return"))
    good = {w: n for w, n in answers.items() if isinstance(n, int)}
    if not good and answers:
        error = next(iter(answers.values()))
        raise RuntimeError(f"fastvar could not run on any Dask worker ({error!r}); is the "
                           "same fastvar installed there?") from error
    return good


def run(client, run: "Run", task_size: "int | None" = None, retries: int = 2) -> None:
    """Compute the missing blocks of a run on a Dask cluster.

    Parameters
    ----------
    client : distributed.Client
        The cluster's client.
    run : Run
        The run; each task's blocks are added to it as they complete, merged in block
        order.
    task_size : int, optional
        Blocks per task (default :func:`task_blocks`).
    retries : int, optional
        Times a task is run again after an error.

    Raises
    ------
    fastvar.runs.ClientClosed
        If the client is closed during the run; the blocks done are kept in ``run``.
    """
    from distributed import as_completed

    from .runs import ClientClosed

    if not client.nthreads():
        client.wait_for_workers(1)  # an adaptive cluster may start with none
    nthreads = client.nthreads()
    request, engine = run.request, run.engine.name
    warm_up(client, request, engine)
    if task_size is None:
        threads = min(nthreads.values())
        task_size = task_blocks(request, run.engine, threads, len(nthreads))
    tag = run.digest[:16]
    # the request as a task of its own: shipped to each worker once, not with every task,
    # and recomputed from its spec (unlike scattered data) if the worker holding it dies
    plan = client.submit(_identity, request, key=f"fastvar-plan-{tag}", pure=True)
    firsts, futures, future = {}, [], None
    for first, count in run.missing():
        for at in range(first, first + count, task_size):
            n = min(task_size, first + count - at)
            future = client.submit(_task, plan, engine, at, n, key=f"fastvar-{tag}-{at}-{n}",
                                   pure=True, retries=retries)
            firsts[future.key] = at
            futures.append(future)
    try:
        for future in as_completed(futures):
            run.add(firsts[future.key], future.result())
            future.release()  # its stats are in ``run``: free the worker's memory
        if client.status in ("closing", "closed"):  # as_completed just stops then
            raise ClientClosed(None)
    except Exception as err:
        if client.status in ("closing", "closed"):
            raise ClientClosed(None) from err
        raise
    finally:
        # after Ctrl-C or an error, stop what is left (tasks other clients want go on); a
        # closed client has dropped them already
        if client.status not in ("closing", "closed"):
            client.cancel([f for f in futures if not f.done()] + [plan])
        # and drop the Futures: the exception's traceback keeps this frame alive, and while a
        # cancelled Future lives, a rerun submitting the same key gets it back cancelled
        futures.clear()
        future = plan = None  # noqa: F841
