"""The Starlette app of ``fastvar serve``: the page, its static files, and the API.

``GET /api/simulate?width=64&depth=10&activation=tanh&trials=2000`` takes the command
line's option names and values (the network's, mlp's shape and the run options of
:mod:`fastvar.options`, parsed by their declared text parsers, plus ``trials``) and answers
:meth:`fastvar.Result.to_json`'s document, whose numbers are bitwise those of
:func:`fastvar.simulate` with the same arguments (``format=csv``: the per-layer columns as
:meth:`fastvar.Result.to_csv` writes them). ``GET /api/plan`` checks the same query and
says what the run will cost (:func:`fastvar.api.estimate`); ``GET /api/options`` describes
the options, for building controls.

Refused before any work, as ``{"error": "..."}`` naming the parameter: a value the command
line would refuse (HTTP 400), the execution options (checkpoint, client, progress) and the
options that read the server's files or set its threads (400), and a run whose calibrated
estimate exceeds the server's ``max_seconds`` or ``max_memory``, or the package's own
limits (about a year, half the free memory) (422). Unknown paths under ``/api/`` answer
JSON too (404; 405 for a method other than GET). At most ``workers``
simulations run at once (default: one per core), at most ``queue`` more wait (up to
``wait_s`` seconds, dropped when their client goes away); others get 503 at once. A
simulation whose client goes away (the page aborts a stale request) is stopped within a
chunk of work, about 0.25 s (:func:`fastvar.runs.stop_when`), and frees its slot;
``GET /api/status`` counts them. A network over ``DEEP`` layers is costed from its first
layers before it is built. The
user's text that an error repeats is cut to ``ECHO_CHARS`` characters. When the server
stops, the simulations running are interrupted (:class:`Workers`) and answer 503.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import dataclasses
import importlib.resources
import logging
import os
import queue
import re
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..cli.common import UsageError, given, network_from_args
from ..cli.simulate import DEFAULT_TRIALS
from ..network import NETWORK_OPTIONS, Network
from ..options import EXECUTION_OPTIONS, RUN_OPTIONS, SHAPE_OPTIONS, Option, count
from ..runs import stop_when
from . import DEFAULT_MAX_SECONDS

if TYPE_CHECKING:
    from ..api import Estimate

STATIC = Path(__file__).with_name("static")
DEFAULT_MAX_MEMORY = 1 << 30  # bytes of working memory one request may need
DEFAULT_WAIT_S = 30.0  # how long a request may wait for a free worker before a 503
POLL_S = 0.05  # how often a running simulation's request checks that its client is there
FORMATS = ("json", "csv")
_log = logging.getLogger("fastvar.serve")
# run options that would act on the server rather than describe the study (the execution
# options and those that read files are recognised from their declarations)
_SERVER_OWNED = {"threads": "threads is set by the server (the numbers do not depend on it)"}


ECHO_CHARS = 60  # user text echoed in an error is cut to this many characters
DEEP = 1024  # deeper networks are first costed from their first layers (see _too_deep)


def clip(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (echoed user input).

    Parameters
    ----------
    text : str
        The user's text.
    limit : int, optional
        The most characters kept.

    Returns
    -------
    str
        ``text``, or its first ``limit`` characters followed by "…".
    """
    return text if len(text) <= limit else text[:limit] + "…"


def _clip_echoes(message: str, texts: Iterable[str]) -> str:
    """``message`` with each long user text in it (as written or as repr writes it) cut by
    :func:`clip`, then any other run of over ``2 ECHO_CHARS`` non-blank characters (a huge
    number, say)."""
    for text in sorted({t for t in texts if len(t) > ECHO_CHARS}, key=len, reverse=True):
        for form in (text, repr(text)[1:-1]):
            message = message.replace(form, clip(form))
    return re.sub(r"\S{%d,}" % (2 * ECHO_CHARS + 1), lambda m: clip(m.group()), message)


class QueryError(ValueError):
    """A request refused before any work: ``status`` (400 or 422) and the parameter.

    Parameters
    ----------
    message : str
        What is wrong and what to change.
    parameter : str or None
        The query parameter concerned (the page highlights it).
    status : int
        HTTP status: 400 (malformed) or 422 (over the server's limits).
    """

    def __init__(self, message: str, parameter: "str | None" = None, status: int = 400):
        super().__init__(message)
        self.parameter, self.status = parameter, status


@dataclass(frozen=True)
class Query:
    """A checked ``/api/simulate`` query: ``simulate(network, trials, **options)``.

    Attributes
    ----------
    network : Network
        The network.
    trials : int
        Forward passes.
    options : dict
        Run options given (keywords of :func:`fastvar.simulate`).
    format : {"json", "csv"}
        What the answer holds.
    """

    network: Network
    trials: int
    options: dict[str, Any]
    format: str = "json"


def _declared() -> dict[str, Option]:
    """The options the API reads from a query, by name (shape, network, run)."""
    return {option.name: option for option in SHAPE_OPTIONS + NETWORK_OPTIONS + RUN_OPTIONS}


def refusal(option: Option) -> "str | None":
    """Why the API does not take an option.

    Parameters
    ----------
    option : Option
        A declared option.

    Returns
    -------
    str or None
        The reason, or None if the API takes it.
    """
    if option in EXECUTION_OPTIONS:
        return (f"{option.name} is not available here: it says where and how a run "
                "executes, and the server decides that")
    if option.read is not None:
        return f"{option.name} reads a file on the server's disk: not available here"
    if option.parse is None:
        return f"{option.name} has no text form"
    return _SERVER_OWNED.get(option.name)


def request_from_query(items: Iterable[tuple[str, str]],
                       limits: "Limits | None" = None) -> Query:
    """The :class:`Query` of a query string's ``(key, value)`` pairs, as the command line
    would read the same options (``--key value``).

    QueryError names what is wrong, with the user's text in its message cut to
    ``ECHO_CHARS`` characters. With ``limits``, a network deeper than ``DEEP`` layers is
    costed from its first layers before it is built (a million layers take seconds to
    build), and refused if that already exceeds them.

    Parameters
    ----------
    items : iterable of (str, str)
        The query string's pairs.
    limits : Limits, optional
        The server's limits, for the early refusal of very deep networks.

    Returns
    -------
    Query

    Raises
    ------
    QueryError
        A parameter unknown, refused, given twice or malformed, a network the options
        cannot make, or (with ``limits``) one too deep for them.
    """
    items = list(items)
    try:
        return _request(items, limits)
    except QueryError as err:
        texts = [text for pair in items for text in pair]
        refused = QueryError(_clip_echoes(str(err), texts), err.parameter, err.status)
        if refused.parameter is not None:
            refused.parameter = clip(refused.parameter)
        raise refused from None


def _request(items: list[tuple[str, str]], limits: "Limits | None") -> Query:
    declared = _declared()
    refused = {option.name: refusal(option) for option in EXECUTION_OPTIONS}
    refused.update({name: refusal(option) for name, option in declared.items()})
    args = argparse.Namespace(**{name: None for name in declared})
    trials, form, seen = DEFAULT_TRIALS, "json", set()
    for key, text in items:
        if "\ufffd" in key:
            raise QueryError(f"parameter name {key!r} is not valid UTF-8 text", key)
        if key in seen:
            raise QueryError(f"{key} is given twice; give it once", key)
        seen.add(key)
        if refused.get(key):
            raise QueryError(refused[key], key)
        if key == "format":
            if text not in FORMATS:
                raise QueryError(f"format: expected one of {', '.join(FORMATS)}, got {text!r}",
                                 key)
            form = text
            continue
        option = declared.get(key)
        if option is None and key != "trials":
            known = ["trials", "format"] + [name for name in declared if not refused[name]]
            raise QueryError(f"unknown parameter {key!r}; the parameters are "
                             f"{', '.join(known)}", key)
        if "\ufffd" in text:
            raise QueryError(f"{key}: {text!r} is not valid UTF-8 text", key)
        try:
            value = count(text) if option is None else option.parse(text)
        except ValueError as err:
            raise QueryError(f"{key}: {err}", key) from None
        if option is None:
            trials = value
        else:
            setattr(args, key, value)
    if limits is not None and args.widths is None and (args.depth or 0) > DEEP:
        _too_deep(args, trials, limits)
    try:
        net = network_from_args(args)
    except (UsageError, ValueError, TypeError) as err:
        named = _named(str(err), seen)
        if named is None and (named := _blame(args, seen)) is not None:
            raise QueryError(f"{named}: {err}", named) from None
        raise QueryError(str(err), named) from None
    return Query(net, trials, given(args, RUN_OPTIONS), form)


def _named(message: str, names: Iterable[str]) -> "str | None":
    """The first of ``names`` that ``message`` mentions (the parameter to highlight)."""
    found = [(message.find(name), name) for name in names if name in message]
    return min(found)[1] if found else None


def _blame(args: argparse.Namespace, given_names: Iterable[str]) -> "str | None":
    """The network option that fails on its own (``network_from_args`` with only it given),
    for a message that names none (e.g. "parameter of 'leaky_relu' must be finite")."""
    names = [option.name for option in NETWORK_OPTIONS + SHAPE_OPTIONS
             if option.name in given_names]
    for name in names:
        alone = argparse.Namespace(**{key: None for key in vars(args)})
        setattr(alone, name, getattr(args, name))
        if name not in ("widths", "width", "depth", "input_width"):
            alone.width, alone.depth = 2, 2  # cheap, whatever the query's shape
        try:
            network_from_args(alone)
        except (UsageError, ValueError, TypeError):
            return name
    return None


def _too_deep(args: argparse.Namespace, trials: int, limits: "Limits") -> None:
    """Refuse (QueryError, 422) a network of ``args.depth`` > ``DEEP`` layers whose cost,
    extrapolated from those of its first ``DEEP`` and ``2 DEEP`` layers (both are linear in
    the depth), exceeds ``limits``; or if its first ``DEEP`` layers alone are refused."""
    depth, costs = args.depth, []
    for prefix in (DEEP, 2 * DEEP):
        if prefix >= depth:
            return
        part = argparse.Namespace(**vars(args))
        part.depth = prefix
        try:
            query = Query(network_from_args(part), trials, given(part, RUN_OPTIONS))
            costs.append(check_cost(query, limits))
        except QueryError as err:  # (a ValueError: first)
            raise QueryError(f"depth {depth}: its first {prefix} layers alone are refused: "
                             f"{err}", err.parameter, err.status) from None
        except (UsageError, ValueError, TypeError):
            return  # the full network's own checks say what is wrong
    (one, two), scale = costs, (depth - DEEP) / DEEP

    def extrapolated(a: float, b: float) -> float:
        return a + (b - a) * scale

    cost = dataclasses.replace(one, seconds=extrapolated(one.seconds, two.seconds),
                               memory_bytes=int(extrapolated(one.memory_bytes,
                                                             two.memory_bytes)))
    try:
        _check_limits(cost, limits, "depth")
    except QueryError as err:
        raise QueryError(f"depth {depth}: {err}", err.parameter, err.status) from None


@dataclass
class Limits:
    """What one server lets a request cost, and how many run at once.

    Attributes
    ----------
    max_seconds : float
        The longest estimated run accepted (wall clock).
    max_memory : int
        The most estimated memory accepted, in bytes.
    workers : int
        Simulations at once.
    queue : int
        Requests that may wait for a worker.
    wait_s : float
        Seconds a request may wait.
    threads : int
        Numba threads shared by the running simulations.
    """

    max_seconds: float = DEFAULT_MAX_SECONDS
    max_memory: int = DEFAULT_MAX_MEMORY
    workers: int = 1
    queue: int = 8
    wait_s: float = DEFAULT_WAIT_S
    threads: int = 1  # numba threads shared by the running simulations


def check_cost(query: Query, limits: Limits) -> "Estimate":
    """The :class:`fastvar.api.Estimate` of ``query`` (with all the server's threads);
    QueryError if it is refused up front (by simulate's own checks, or over the limits).

    Parameters
    ----------
    query : Query
        The checked query.
    limits : Limits
        The server's limits.

    Returns
    -------
    Estimate

    Raises
    ------
    QueryError
        Refused by simulate's own checks (400), or over the limits: the server's, or the
        package's own (a year, half the free memory) (422).
    """
    from ..api import TooLong, estimate

    try:
        cost = estimate(query.network, query.trials, threads=limits.threads, **query.options)
    except (TooLong, MemoryError) as err:  # over the package's own limits: as over ours
        raise QueryError(str(err), _culprit(str(err), query) or "trials", status=422) from None
    except (ValueError, TypeError) as err:
        raise QueryError(str(err), _culprit(str(err), query)) from None
    _check_limits(cost, limits)
    return cost


def _culprit(message: str, query: Query) -> "str | None":
    """The parameter to name for a refusal of ``query`` by simulate's own checks."""
    return _named(message, ["trials"] + list(query.options)) or next(
        (name for name in ("width", "depth", "engine") if name in message), None)


def _check_limits(cost: "Estimate", limits: Limits, parameter: "str | None" = None) -> None:
    """QueryError (422) naming ``parameter`` (default: trials for time, width for memory)
    if ``cost`` exceeds ``limits``."""
    if cost.seconds > limits.max_seconds:
        raise QueryError(f"this run would take {cost.describe()}, over this server's limit of "
                         f"{limits.max_seconds:g} s (fastvar serve --max-seconds); use fewer "
                         "trials, smaller widths or fewer layers", parameter or "trials",
                         status=422)
    if cost.memory_bytes > limits.max_memory:
        raise QueryError(f"this run would need about {cost.memory_bytes / 2**20:.0f} MiB, over "
                         f"this server's limit of {limits.max_memory / 2**20:.0f} MiB; use "
                         "smaller widths or fewer layers", parameter or "width", status=422)


def run_query(query: Query, threads: int) -> "tuple[str, str]":
    """Run a query.

    Parameters
    ----------
    query : Query
        The checked query.
    threads : int
        Numba threads.

    Returns
    -------
    body : str
        The Result as JSON (:meth:`~fastvar.Result.to_json`) or CSV.
    media_type : str
        ``"application/json"`` or ``"text/csv"``.
    """
    from ..api import simulate

    res = simulate(query.network, query.trials, threads=threads, **query.options)
    if query.format == "csv":
        with tempfile.TemporaryDirectory(prefix="fastvar-serve-") as folder:
            path = os.path.join(folder, "result.csv")
            res.to_csv(path)
            return Path(path).read_text(), "text/csv"
    return res.to_json(), "application/json"


def describe_options(limits: Limits) -> dict[str, Any]:
    """What ``GET /api/options`` answers: the declared options the API takes (name, group,
    default, help), those it refuses and why, the names each may take, and the limits.

    Parameters
    ----------
    limits : Limits
        The server's limits.

    Returns
    -------
    dict
        JSON-able: ``options`` (list of dicts), ``choices``, ``limits``.
    """
    from ..activations import ACTIVATION_NAMES, Activation
    from ..engines import ENGINES
    from ..network import DISTRIBUTIONS, INIT_SCHEMES, NORMS, RESIDUAL_SCALINGS

    options = [{"name": "trials", "group": "run", "default": DEFAULT_TRIALS,
                "help": "forward passes (the command line's --trials)", "refused": None}]
    for group, declared in (("shape", SHAPE_OPTIONS), ("network", NETWORK_OPTIONS),
                            ("run", RUN_OPTIONS), ("execution", EXECUTION_OPTIONS)):
        for option in declared:
            default = option.default
            if not isinstance(default, (str, int, float, bool, type(None))):
                default = None
            options.append({"name": option.name, "group": group, "default": default,
                            "help": option.help, "refused": refusal(option)})
    # the activations that take a parameter, with its default (written into their label)
    params = {name: Activation.parse(name).param for name in ACTIVATION_NAMES
              if Activation.parse(name).label != name}
    return {"options": options,
            "choices": {"activation": list(ACTIVATION_NAMES), "activation_param": params,
                        "init": list(INIT_SCHEMES), "distribution": list(DISTRIBUTIONS),
                        "norm": list(NORMS), "residual": list(RESIDUAL_SCALINGS),
                        "engine": ["auto"] + list(ENGINES), "format": list(FORMATS)},
            "limits": {"max_seconds": limits.max_seconds, "max_memory": limits.max_memory,
                       "workers": limits.workers, "queue": limits.queue}}


class Stopped(RuntimeError):
    """A simulation interrupted because the server is stopping (:meth:`Workers.stop`)."""


class Cancelled(RuntimeError):
    """A simulation stopped because its client went away (:meth:`Slots.run`)."""


class Workers:
    """``count`` daemon threads that run the simulations, one at a time each.

    Simulations run on these threads only: numba's OpenMP layer keeps a team of threads per
    calling thread, and teams left spinning on idle threads steal cores. They are daemon
    threads, so that the process may exit while one runs. Each task has its own stop event,
    checked between two chunks of about 0.25 s (:func:`fastvar.runs.stop_when`): set for a
    client that went away, its future fails with :class:`Cancelled`; set by :meth:`stop`
    for every running task, with :class:`Stopped`.

    Parameters
    ----------
    count : int
        How many threads (simulations at once).
    """

    def __init__(self, count: int) -> None:
        self.tasks: "queue.SimpleQueue" = queue.SimpleQueue()
        self.running_stops: dict[int, threading.Event] = {}  # thread ident -> its task's stop
        self.stopping = False
        self.threads = [threading.Thread(target=self._work, name=f"fastvar-serve-{i}",
                                         daemon=True) for i in range(count)]
        for thread in self.threads:
            thread.start()

    def submit(self, func, *args) -> "tuple[concurrent.futures.Future, threading.Event]":
        """``func(*args)`` on a worker thread.

        Parameters
        ----------
        func : callable
            The work.
        *args
            Its arguments.

        Returns
        -------
        future : concurrent.futures.Future
            Its result or exception.
        stop : threading.Event
            Set it to stop the work between two chunks (the future then fails with
            :class:`Cancelled`).
        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        stop = threading.Event()
        self.tasks.put((future, func, args, stop))
        return future, stop

    def _work(self) -> None:
        me = threading.get_ident()
        while not self.stopping:
            task = self.tasks.get()
            if task is None:
                return
            future, func, args, stop = task
            if not future.set_running_or_notify_cancel():
                continue
            self.running_stops[me] = stop
            if self.stopping:  # stop() came before this task was registered
                stop.set()
            try:
                with stop_when(stop):
                    result = func(*args)
            except KeyboardInterrupt:  # fastvar.Interrupted: this task's stop event was set
                future.set_exception(Stopped("the server is stopping") if self.stopping
                                     else Cancelled("the client went away"))
            except Exception as err:  # the request answers it
                future.set_exception(err)
            else:
                future.set_result(result)
            finally:
                del self.running_stops[me]

    def stop(self) -> None:
        """Stop the running simulations (between two chunks), fail the queued ones with
        :class:`Stopped`, and end the threads; no waiting."""
        self.stopping = True
        for stop in list(self.running_stops.values()):
            stop.set()
        # tasks no thread took yet would never run: their requests waited until uvicorn's
        # shutdown cancelled them, and answered 500 with a traceback
        while True:
            try:
                task = self.tasks.get_nowait()
            except queue.Empty:
                break
            if task is not None and task[0].set_running_or_notify_cancel():
                task[0].set_exception(Stopped("the server is stopping"))
        for _ in self.threads:
            self.tasks.put(None)

    def running(self) -> bool:
        """Whether a simulation is still running (a thread not yet out of :meth:`stop`).

        Returns
        -------
        bool
        """
        return any(thread.is_alive() for thread in self.threads) and bool(self.running_stops)


class Slots:
    """At most ``limits.workers`` simulations at once and ``limits.queue`` waiting.

    Used from the event loop's thread only, so the counters need no lock; a waiting request
    polls (cheap: a few per second per waiter) and gives up when its client disconnects.

    Parameters
    ----------
    limits : Limits
        The server's limits.
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.running = 0
        self.waiting = 0
        self.cancelled = 0  # simulations stopped because their client went away
        self.workers = Workers(limits.workers)

    async def run(self, request: Request, func, *args):
        """``func(*args)`` on one of the simulation threads, awaited.

        The simulation is stopped between two chunks (:class:`Cancelled`) if ``request``'s
        client disconnects meanwhile.

        Parameters
        ----------
        request : starlette.requests.Request
            The request the work answers (polled for a disconnected client).
        func : callable
            The work.
        *args
            Its arguments.

        Returns
        -------
        object
            What ``func`` returns.
        """
        future, stop = self.workers.submit(func, *args)
        waiter = asyncio.wrap_future(future)
        while not stop.is_set():
            done, _ = await asyncio.wait({waiter}, timeout=POLL_S)
            if done:
                break
            if await request.is_disconnected():
                stop.set()
        try:
            return await waiter
        except Cancelled:
            self.cancelled += 1
            _log.info("fastvar serve: a simulation was stopped: its client went away (%s)",
                      request.url.query[:2 * ECHO_CHARS])
            raise

    def status(self) -> dict[str, int]:
        """What ``GET /api/status`` answers.

        Returns
        -------
        dict of str to int
            Simulations running, waiting and stopped (their client went away), and the
            server's limits (workers, queue).
        """
        return {"running": self.running, "waiting": self.waiting,
                "cancelled": self.cancelled, "workers": self.limits.workers,
                "queue": self.limits.queue}

    def stop(self) -> None:
        """Stop at once: running simulations are interrupted, waiting requests turned away
        (both answer 503), and the worker threads end."""
        self.workers.stop()

    async def enter(self, request: Request) -> "str | None":
        """Take a slot (then :meth:`leave`), waiting up to ``limits.wait_s``.

        Parameters
        ----------
        request : starlette.requests.Request
            The request waiting (polled for a disconnected client).

        Returns
        -------
        str or None
            None once a slot is taken; else why not: "busy", "gone" or "stopping".
        """
        limits = self.limits
        if self.workers.stopping:
            return "stopping"
        if self.running >= limits.workers and self.waiting >= limits.queue:
            return "busy"
        self.waiting += 1
        try:
            deadline = time.monotonic() + limits.wait_s
            polls = 0
            while self.running >= limits.workers:
                if self.workers.stopping:
                    return "stopping"
                if time.monotonic() > deadline:
                    return "busy"
                polls += 1
                if polls % 10 == 0 and await request.is_disconnected():
                    return "gone"
                await anyio.sleep(0.02)
        finally:
            self.waiting -= 1
        self.running += 1
        return None

    def leave(self) -> None:
        """Give back a slot taken by :meth:`enter`."""
        self.running -= 1

    def threads(self) -> int:
        """Numba threads for a simulation that just entered: the server's share.

        Returns
        -------
        int
            At least 1.
        """
        return max(1, self.limits.threads // max(1, self.running))


def _error(err: QueryError) -> JSONResponse:
    return JSONResponse({"error": _clip_echoes(str(err), ()), "parameter": err.parameter},
                        status_code=err.status)


def _query(request: Request, limits: Limits) -> Query:
    return request_from_query(request.query_params.multi_items(), limits)


def _stopping() -> JSONResponse:
    return JSONResponse({"error": "the server is stopping (Ctrl-C); the simulation was not "
                         "finished", "parameter": None}, status_code=503)


def warm_up() -> float:
    """Compile or load every engine's kernels with a tiny run each.

    Returns
    -------
    float
        Seconds it took.
    """
    from .. import mlp, simulate
    from ..engines import ENGINES
    from ..results import IncompleteStatisticsWarning

    tick = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteStatisticsWarning)
        for name in ENGINES:
            simulate(mlp(4, 2), 4, engine=name).compute_theory()
    return time.perf_counter() - tick


def concurrent_workers(cores: int) -> int:
    """Simulations that may run at once: one per core, or 1 where numba's threading
    layer cannot be entered from two threads at once (workqueue aborts the process).

    Parameters
    ----------
    cores : int
        Cores available.

    Returns
    -------
    int
        At least 1.
    """
    import numba

    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: the layer is unknown
        return 1
    return 1 if layer == "workqueue" else max(1, cores)


def plotly_js() -> Path:
    """The plotly.min.js bundled in the installed ``plotly`` package.

    Returns
    -------
    pathlib.Path
    """
    return Path(str(importlib.resources.files("plotly") / "package_data" / "plotly.min.js"))


_HEADERS = {
    # the page may talk to this server only: nothing leaves for the internet
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data: "
                               "blob:; style-src 'self' 'unsafe-inline'; script-src 'self'",
    "X-Content-Type-Options": "nosniff",
}


def create_app(max_seconds: float = DEFAULT_MAX_SECONDS, *, workers: "int | None" = None,
               queue: "int | None" = None, wait_s: float = DEFAULT_WAIT_S,
               max_memory: int = DEFAULT_MAX_MEMORY, warm: bool = True) -> Starlette:
    """The Starlette app of ``fastvar serve``.

    Parameters
    ----------
    max_seconds : float
        Refuse (HTTP 422) a request whose calibrated estimate (:func:`fastvar.api.estimate`,
        with all numba threads) exceeds this many seconds.
    workers : int or None
        Simulations at once (default: one per core, or 1 where numba's threading layer is
        workqueue, which two threads may not enter at once).
    queue : int or None
        Requests that may wait for a worker (default 4 per worker); more get 503.
    wait_s : float
        Seconds a request may wait for a worker before it gets 503.
    max_memory : int
        Refuse (HTTP 422) a request whose estimated working memory exceeds this, in bytes.
    warm : bool
        Compile or load the kernels when the app starts (:func:`warm_up`), before it
        answers anything.

    Returns
    -------
    starlette.applications.Starlette
    """
    import numba

    limits = Limits(max_seconds=float(max_seconds), max_memory=int(max_memory),
                    wait_s=float(wait_s), threads=numba.config.NUMBA_NUM_THREADS)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        if warm:
            await run_in_threadpool(warm_up)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
            os.cpu_count() or 1)
        limits.workers = workers if workers is not None else concurrent_workers(cores)
        limits.queue = queue if queue is not None else 4 * limits.workers
        idle, app.state.slots = app.state.slots, Slots(limits)
        idle.stop()
        try:
            yield
        finally:
            app.state.slots.stop()

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={**_HEADERS,
                                                             "Cache-Control": "no-cache"})

    async def plotly(request: Request) -> Response:
        path = plotly_js()
        if not path.is_file():
            return JSONResponse({"error": "the plotly package has no plotly.min.js: pip "
                                 "install 'fastvar[serve]'"}, status_code=500)
        return FileResponse(path, media_type="text/javascript",
                            headers={"Cache-Control": "max-age=86400"})

    async def options(request: Request) -> Response:
        return JSONResponse(describe_options(limits))

    async def plan(request: Request) -> Response:
        try:
            query = await run_in_threadpool(_query, request, limits)
            cost = await run_in_threadpool(check_cost, query, limits)
        except QueryError as err:
            return _error(err)
        net = query.network
        return JSONResponse({
            "network": net.to_dict(), "describe": net.describe(), "trials": query.trials,
            "weight_var": net.weight_var.tolist(), "sigma_w2": net.sigma_w2.tolist(),
            "engine": cost.engine, "seconds": cost.seconds, "threads": cost.threads,
            "memory_bytes": cost.memory_bytes, "estimate": cost.describe()})

    async def simulate(request: Request) -> Response:
        try:
            query = await run_in_threadpool(_query, request, limits)
            await run_in_threadpool(check_cost, query, limits)
        except QueryError as err:
            return _error(err)
        slots = request.app.state.slots
        why = await slots.enter(request)
        if why == "stopping":
            return _stopping()
        if why is not None:
            running = f"{slots.running} simulation{'s' if slots.running != 1 else ''}"
            return JSONResponse({"error": f"the server is busy ({running} running, "
                                 f"{slots.waiting} waiting); try again shortly",
                                 "parameter": None}, status_code=503,
                                headers={"Retry-After": "1"})
        try:
            body, media = await slots.run(request, run_query, query, slots.threads())
        except Stopped:
            return _stopping()
        except Cancelled:  # no one is listening: "client closed request", as nginx says
            return Response(status_code=499)
        except (ValueError, TypeError, MemoryError) as err:  # refused by simulate itself
            return _error(QueryError(str(err), _culprit(str(err), query)))
        except Exception as err:  # the server keeps serving; the page shows the message
            _log.exception("simulation failed")
            return JSONResponse({"error": f"internal error: {type(err).__name__}: {err}",
                                 "parameter": None}, status_code=500)
        finally:
            slots.leave()
        return Response(body, media_type=media)

    async def status(request: Request) -> Response:
        return JSONResponse(request.app.state.slots.status(),
                            headers={"Cache-Control": "no-store"})

    async def api_not_found(request: Request, exc: HTTPException) -> Response:
        """Under /api/, a JSON error as every other answer there; elsewhere, Starlette's."""
        if not request.url.path.startswith("/api/"):
            return PlainTextResponse(exc.detail, status_code=exc.status_code)
        what = "no such API path" if exc.status_code == 404 else f"{exc.detail}: use GET"
        return JSONResponse({"error": f"{what} ({clip(request.url.path)}); the API answers "
                             "/api/simulate, /api/plan, /api/options and /api/status",
                             "parameter": None}, status_code=exc.status_code)

    routes = [Route("/", page), Route("/static/plotly.min.js", plotly),
              Route("/api/options", options), Route("/api/plan", plan),
              Route("/api/status", status),
              Route("/api/simulate", simulate),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={404: api_not_found, 405: api_not_found})
    app.state.slots = Slots(limits)  # replaced at startup, once workers are known
    app.state.limits = limits
    return app

