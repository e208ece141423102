"""Run simulations on a Dask cluster: ranges of blocks become tasks, merged in block order.

``simulate(..., client=CLIENT)`` and ``sweep(..., client=CLIENT)`` land here
(:func:`run` for one run, :func:`run_many` for a sweep's configurations: one set of
tasks for all of them). The missing blocks are cut into tasks of about
``fastvar.engines.costs.TASK_SECONDS`` of work (:func:`task_pieces`, by each engine's
calibrated ``seconds_per_network``): a large run is split into ranges of blocks, small
runs are packed several to a task. Each task has an explicit key made of the requests'
digests and the ranges (``fastvar-<digest>-<first>-<count>``, or ``fastvar-pack-<hash>``
for a packed task), and ``retries``; it returns per-block stats (count, L, ROWS, S) per
range. The client takes them with ``as_completed`` and hands them to each
:class:`fastvar.runs.Run`, which merges strictly in block order: every result is bitwise
that of a local run, for any number of workers and any packing. A worker lost mid-run
costs only its tasks, which the scheduler runs again elsewhere (up to
``distributed.scheduler.allowed-failures`` times per task); a worker that joins mid-run
gets tasks as the scheduler balances them (an adaptive cluster), and compiles (or loads)
the kernels on its first one.

Workers: each gets ``NUMBA_NUM_THREADS`` = its ``threads_per_worker`` (unless set in its
environment), and one kernel call at a time uses them all (a per-worker lock: concurrent
parallel calls would oversubscribe the cores, and numba's workqueue layer refuses them).
The kernels are compiled (or loaded from numba's cache) on every worker before the tasks,
once per kernel signature (:func:`kernel_signature`), not once per run: on one worker
first, then on the others, so that workers sharing a cache folder (one machine, or a
shared file system) never race to write the same cache files.
"""
from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from ._threads import numba_threads, threads_for_process

try:
    from distributed import WorkerPlugin
except ImportError:  # without Dask this module still imports; check_client says what to do
    WorkerPlugin = object

if TYPE_CHECKING:  # the workers unpickle this module: it must not import numba before
    # threads_for_process has set NUMBA_NUM_THREADS
    from .engines.base import Plan
    from .runs import Run

TASKS_PER_WORKER = 4  # at least this many per worker, so workers finish close together
# the fixed cost of one piece of a task (an engine call on a worker and the client's merge
# of its stats), beside its blocks' calibrated work: small runs are packed until it is small
PIECE_SECONDS = 2e-4
CONNECT_SECONDS = 5.0  # connect(): how long to wait for a scheduler's answer
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


SCHEMES = ("tcp", "tls", "ws", "wss")  # the addresses --scheduler takes (tcp when none)
_WHAT = ("give tcp://HOST:PORT, as `dask scheduler` prints it, or the path of the file of "
         "`dask scheduler --scheduler-file PATH`")


def scheduler_target(text: str) -> "dict[str, str]":
    """Check the form of a ``--scheduler`` value, before connecting to anything.

    Parameters
    ----------
    text : str
        ``[PROTOCOL://]HOST:PORT`` (protocol tcp, tls, ws or wss; tcp by default; an IPv6
        host in brackets), or the path of an existing scheduler file (JSON with the
        scheduler's ``address``, as ``dask scheduler --scheduler-file PATH`` writes it). A
        value with a path separator or ending in ``.json`` is a file's path.

    Returns
    -------
    dict of str to str
        ``{"address": ADDRESS}``, plus ``"scheduler_file": PATH`` for a file.

    Raises
    ------
    ValueError
        If ``text`` is neither, saying what to give instead.
    """
    import json

    if not text.strip():
        raise ValueError(f"--scheduler is empty; {_WHAT}")
    if "://" not in text and (os.sep in text or "/" in text or text.endswith(".json")):
        try:
            with open(text, encoding="utf-8") as file:
                address = json.load(file).get("address")
        except FileNotFoundError:
            raise ValueError(f"no scheduler file {text}; {_WHAT}") from None
        except (OSError, ValueError, AttributeError) as err:
            raise ValueError(f"cannot read the scheduler file {text} ({err}); it should be "
                             "the JSON `dask scheduler --scheduler-file PATH` writes") from None
        if not isinstance(address, str):
            raise ValueError(f"the scheduler file {text} has no \"address\"; it should be the "
                             "JSON `dask scheduler --scheduler-file PATH` writes")
        return {**scheduler_target(address), "scheduler_file": text}
    scheme, sep, location = text.rpartition("://")
    scheme = scheme if sep else "tcp"
    if scheme not in SCHEMES:
        raise ValueError(f"--scheduler {text!r}: unknown protocol {scheme!r} (known: "
                         f"{', '.join(SCHEMES)}); {_WHAT}")
    host, colon, port = location.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # IPv6
        host_ok = len(host) > 2 and all(c in "0123456789abcdefABCDEF:." for c in host[1:-1])
    else:
        host_ok = bool(host) and all(c.isalnum() or c in ".-_" for c in host)
    if not (colon and host_ok and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"--scheduler {text!r} is not an address; {_WHAT}")
    return {"address": f"{scheme}://{location}"}


def _identity_of(address: str, seconds: float) -> dict:
    """What the Dask server at ``address`` says it is (its ``identity``), asked in a thread
    of its own (the caller may be inside an event loop) within ``seconds``."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.core import rpc
    from distributed.security import Security

    async def ask() -> dict:
        args = Security().get_connection_args("client")  # tls: the configured certificates
        async with rpc(address, timeout=seconds, connection_args=args) as server:
            return await asyncio.wait_for(server.identity(), seconds)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, ask()).result()


def connect(address: str, timeout: "float | None" = None):
    """A Client of the running Dask scheduler at ``address`` (the command line's ``--scheduler``).

    The form of ``address`` is checked first (:func:`scheduler_target`); then the scheduler
    is asked who it is, within ``timeout`` seconds, before a Client is made (a Client that
    fails to connect waits twice its timeout again as it is collected, and prints a
    traceback then).

    Parameters
    ----------
    address : str
        The scheduler's address, e.g. ``tcp://10.0.0.5:8786`` (``dask scheduler`` prints
        it), or a scheduler file's path (``dask scheduler --scheduler-file PATH``).
    timeout : float, optional
        Seconds to wait for the scheduler's answer (default ``CONNECT_SECONDS``, 5: a
        scheduler on a working network answers in milliseconds, and a wrong address should
        not keep the command waiting).

    Returns
    -------
    distributed.Client
        The connected client; close it after use.

    Raises
    ------
    ImportError
        Without dask.distributed installed (``pip install 'fastvar[dask]'``).
    ValueError
        If ``address`` is neither an address nor a scheduler file, or what answers there
        is not a Dask scheduler.
    OSError
        If no scheduler answers at ``address`` within ``timeout`` seconds.
    """
    target = scheduler_target(address)
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("--scheduler needs dask.distributed: pip install 'fastvar[dask]'"
                          ) from None
    seconds = CONNECT_SECONDS if timeout is None else timeout
    where = target["address"]
    try:
        scheme, _, location = where.partition("://")
        if scheme in ("tcp", "tls"):  # a refused connection says so at once (Dask retries)
            host, _, port = location.rpartition(":")
            socket.create_connection((host.strip("[]"), int(port)), timeout=seconds).close()
        kind = _identity_of(where, seconds).get("type")
    except Exception as err:  # refused, timed out, TLS, a server speaking another protocol
        if isinstance(err, TimeoutError) and not str(err):
            reason = "timed out"
        elif isinstance(err, OSError):
            reason = " ".join(str(err).split()) or type(err).__name__
        else:  # whatever a stranger's bytes made of Dask's messages
            reason = f"what answers does not speak Dask's protocol: {type(err).__name__}"
        raise OSError(f"no Dask scheduler answered at {where} within {seconds:g} s ({reason}); "
                      "check the address, or start one with `dask scheduler` and give the "
                      "address it prints (tcp://HOST:8786)") from None
    if kind != "Scheduler":
        raise ValueError(f"{where} is a Dask {kind}, not a scheduler; give the scheduler's "
                         "address (`dask scheduler` prints it)")
    return Client(where, set_as_default=False)


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


def _identity(request: "Plan") -> "Plan":
    return request


def _warm_all(jobs: "list[tuple[Plan, str]]", dask_worker=None) -> int:
    """client.run target: compile or load each job's kernels (one network each); returns
    the worker's numba threads."""
    import numba

    threads = dask_worker.state.nthreads if dask_worker is not None else 1
    for request, engine in jobs:
        _compute(request, engine, 0, 1, threads)
    return numba.config.NUMBA_NUM_THREADS


def kernel_signature(request: "Plan", engine: str) -> tuple:
    """What selects the compiled kernels of a request: requests that agree on it share them.

    Parameters
    ----------
    request : Plan
        A planned request.
    engine : str
        Its engine's name.

    Returns
    -------
    tuple
        The engine, the inputs' kind, whether networks take several inputs, and whether
        the backward pass runs (the kernels' other arguments are numbers and arrays of
        fixed types, which do not make new compilations).
    """
    return (engine, int(request.inputs_kind), request.inputs_per_network > 1,
            bool(request.gradients))


def warm_up(client, jobs: "list[tuple[Plan, str]]") -> dict[str, int]:
    """Compile (or load) the kernels on every worker, one worker first; once per signature.

    One worker first, so that workers sharing a numba cache folder never race to write it.
    A worker lost meanwhile is skipped, and one that joins later compiles (or loads) on its
    first task: the plugin that sets its numba threads reaches it as it joins.

    Parameters
    ----------
    client : distributed.Client
        The cluster's client.
    jobs : list of (Plan, str)
        The requests and their engines' names; one of each :func:`kernel_signature` runs,
        as a one-network copy, on each worker.

    Returns
    -------
    dict of str to int
        Each worker's address and its ``NUMBA_NUM_THREADS``.

    Raises
    ------
    RuntimeError
        If it fails on every worker (fastvar missing there, say), with the first error.
    """
    tiny = {}
    for request, engine in jobs:
        # one network (and at most two data rows) compiles the same kernels as the request
        tiny.setdefault(kernel_signature(request, engine), (dataclasses.replace(
            request, trials=request.inputs_per_network, data=request.data[:2]), engine))
    client.register_plugin(NumbaThreads(), name=NumbaThreads.name)
    workers = sorted(client.nthreads())
    answers: dict[str, object] = {}
    for group in (workers[:1], workers[1:]):
        if group:
            answers.update(client.run(_warm_all, list(tiny.values()), workers=group,
                                      on_error="return"))
    good = {w: n for w, n in answers.items() if isinstance(n, int)}
    if not good and answers:
        error = next(iter(answers.values()))
        raise RuntimeError(f"fastvar could not run on any Dask worker ({error!r}); is the "
                           "same fastvar installed there?") from error
    return good


def task_pieces(runs: "Sequence[Run]", threads: int,
                workers: int) -> "list[list[tuple[int, int, int]]]":
    """The tasks of the missing blocks of several runs: small runs packed, large ones split.

    Each task is about ``fastvar.engines.costs.TASK_SECONDS`` of work on one worker (by each
    engine's calibrated ``seconds_per_network``), fewer when the whole work is short for the
    cluster (at least ``TASKS_PER_WORKER`` tasks per worker then), and never more per-block
    stats than one local chunk (:func:`fastvar.runs.chunk_cap`).

    Parameters
    ----------
    runs : sequence of Run
        The runs, in the order their blocks should start (:func:`run_many` gives earlier
        tasks a higher priority).
    threads : int
        Threads of a worker (the fewest of any worker).
    workers : int
        Workers of the cluster.

    Returns
    -------
    list of list of (int, int, int)
        Per task, its pieces: (index in ``runs``, first block, number of blocks). Every
        missing block is in exactly one piece; a run's pieces follow block order.
    """
    from .engines.costs import TASK_SECONDS
    from .runs import chunk_cap

    def block_seconds(run: "Run") -> float:
        cores = max(1, threads) if run.engine.parallel else 1
        seconds = run.engine.seconds_per_network(run.request) * run.request.networks_per_block
        return max(seconds / cores, 1e-9) + PIECE_SECONDS / run.request.blocks

    costs = [block_seconds(run) for run in runs]
    total = sum(cost * count for run, cost in zip(runs, costs) for _, count in run.missing())
    target = min(TASK_SECONDS, total / (TASKS_PER_WORKER * max(1, workers)))
    tasks: list[list[tuple[int, int, int]]] = []
    task: list[tuple[int, int, int]] = []
    seconds = memory = 0.0  # of the task being packed; memory in parts of one chunk
    for i, (run, cost) in enumerate(zip(runs, costs)):
        cap = chunk_cap(run.request.network.depth)
        size = max(1, min(cap, int(target / cost)))  # blocks of one piece
        for first, count in run.missing():
            for at in range(first, first + count, size):
                n = min(size, first + count - at)
                # a piece that would take the task well past its target starts the next
                if task and (seconds + n * cost > target * 1.5 or memory + n / cap > 1):
                    tasks.append(task)
                    task, seconds, memory = [], 0.0, 0.0
                task.append((i, at, n))
                seconds, memory = seconds + n * cost, memory + n / cap
                # a whole piece is a task: int() leaves it just short of the target, and a
                # run's last piece would otherwise join its previous one
                if seconds >= target or n == size:
                    tasks.append(task)
                    task, seconds, memory = [], 0.0, 0.0
    if task:
        tasks.append(task)
    return tasks


def _pieces_task(plans: "list[Plan]", engines: "list[str]",
                 pieces: "list[tuple[int, int, int]]") -> list:
    """One task: per piece (plan, first, count), its per-block stats (count, L, ROWS, S)
    and the seconds its engine call took on the worker."""
    from distributed import get_worker

    threads = get_worker().state.nthreads
    out = []
    for i, first, count in pieces:
        tick = time.perf_counter()
        stats = _compute(plans[i], engines[i], first, count, threads)
        out.append((stats, time.perf_counter() - tick))
    return out


def run_many(client, runs: "Sequence[Run]",
             finished: "Callable[[int], None] | None" = None, retries: int = 2) -> None:
    """Compute the missing blocks of several runs on a Dask cluster, as one set of tasks.

    The blocks are cut and packed by :func:`task_pieces`; each task has an explicit key
    (``fastvar-<digest>-<first>-<count>`` for one range of one run, ``fastvar-pack-<hash
    of its ranges>`` for several) and ``retries``. The kernels are warmed up once per
    :func:`kernel_signature`, not once per run. Each run merges its blocks in block order,
    so each result is bitwise that of the run alone, on any cluster. Each run's ``task_s``
    sums the seconds of its pieces' engine calls on the workers (a sweep reports it as each
    configuration's ``elapsed_s``: their wall times overlap).

    Parameters
    ----------
    client : distributed.Client
        The cluster's client.
    runs : sequence of Run
        The runs; their completed blocks are added to them as tasks complete.
    finished : callable, optional
        Called with a run's index as soon as its last block is in (at once for a run
        complete from the start), in the order the runs complete.
    retries : int, optional
        Times a task is run again after an error (a lost worker does not count: the
        scheduler reruns its tasks up to ``distributed.scheduler.allowed-failures`` times).

    Raises
    ------
    fastvar.interrupts.ClientClosed
        If the client is closed before every block is in (the wait stops at once); the
        blocks done are kept in the runs. A close after the last block changes nothing.
    KeyboardInterrupt
        On Ctrl-C; the tasks left are cancelled, the blocks done are kept in the runs.
    """
    from asyncio import CancelledError

    from ._hashing import hash_hex
    from .interrupts import ClientClosed

    for i, one in enumerate(runs):
        if finished is not None and not one.missing():
            finished(i)
    if not any(one.missing() for one in runs):
        return
    if not client.nthreads():
        client.wait_for_workers(1)  # an adaptive cluster may start with none
    nthreads = client.nthreads()
    warm_up(client, [(one.request, one.engine.name) for one in runs if one.missing()])
    tasks = task_pieces(runs, min(nthreads.values()), len(nthreads))
    spans: dict[int, int] = {}
    for task in tasks:
        for i in {piece[0] for piece in task}:
            spans[i] = spans.get(i, 0) + 1
    # a request used by several tasks is a task of its own: shipped to each worker once,
    # and recomputed from its spec (unlike scattered data) if the worker holding it dies
    plans = {i: client.submit(_identity, runs[i].request, pure=True,
                              key=f"fastvar-plan-{runs[i].digest[:16]}")
             for i, n in spans.items() if n > 1}
    pieces_of, futures = {}, []
    try:
        for n, task in enumerate(tasks):
            order = list(dict.fromkeys(i for i, _, _ in task))  # runs of the task, local index
            names = [f"{runs[i].digest[:16]}-{first}-{count}" for i, first, count in task]
            key = (f"fastvar-{names[0]}" if len(task) == 1
                   else f"fastvar-pack-{hash_hex(' '.join(names), 16)}")
            future = client.submit(
                _pieces_task, [plans.get(i, runs[i].request) for i in order],
                [runs[i].engine.name for i in order],
                [(order.index(i), first, count) for i, first, count in task],
                key=key, pure=True, retries=retries,
                # in this order (Dask's own order of tasks submitted together is arbitrary):
                # finished configurations and checkpoint prefixes come early
                priority=len(tasks) - n)
            pieces_of[future.key] = task
            futures.append(future)
        for future in _completed(client, futures):
            try:
                parts = future.result()
            except (Exception, CancelledError):  # the close cancels what it has not got
                if closed(client):
                    break
                raise
            for (i, first, _), (stats, seconds) in zip(pieces_of[future.key], parts):
                runs[i].task_s += seconds
                runs[i].add(first, stats)
                if finished is not None and not runs[i].missing():
                    finished(i)
            future.release()  # its stats are in the runs: free the worker's memory
        if any(one.missing() for one in runs):
            if closed(client):
                raise ClientClosed(None)
            raise RuntimeError("Dask returned without the results of every task")
    except Exception as err:
        # a close after the last block was in changes nothing: the results are complete
        if closed(client) and any(one.missing() for one in runs):
            raise ClientClosed(None) from err
        raise
    finally:
        # after Ctrl-C or an error, stop what is left (tasks other clients want go on); a
        # closed client has dropped them already
        if not closed(client):
            client.cancel([f for f in futures if not f.done()] + list(plans.values()))
        # and drop the Futures: the exception's traceback keeps this frame alive, and while a
        # cancelled Future lives, a rerun submitting the same key gets it back cancelled
        futures.clear()
        plans.clear()
        future = None  # noqa: F841


def _completed(client, futures: list) -> "Iterator":
    """``futures`` as they complete (``distributed.as_completed``), stopping as soon as the
    client closes: as_completed alone then waits for tasks it will never hear of."""
    from distributed import as_completed

    pending = as_completed(futures, loop=client.loop)
    while not pending.is_empty():
        if pending.has_ready():
            yield from pending.next_batch(block=False)
        elif closed(client):
            return
        else:
            time.sleep(0.01)  # a poll: tasks last about a couple of seconds


def closed(client) -> bool:
    """Whether ``client`` is closing or closed (by another thread, say).

    Parameters
    ----------
    client : distributed.Client
        The cluster's client.

    Returns
    -------
    bool
        True once ``client.close()`` has begun.
    """
    return client.status in ("closing", "closed")


def run(client, run: "Run", retries: int = 2) -> None:
    """Compute the missing blocks of one run on a Dask cluster (:func:`run_many`).

    Parameters
    ----------
    client : distributed.Client
        The cluster's client.
    run : Run
        The run; each task's blocks are added to it as they complete, merged in block
        order.
    retries : int, optional
        Times a task is run again after an error.

    Raises
    ------
    fastvar.interrupts.ClientClosed
        If the client is closed during the run; the blocks done are kept in ``run``.
    """
    run_many(client, [run], retries=retries)
