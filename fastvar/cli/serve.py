"""``fastvar serve``: the live explorer, a local web page over :func:`fastvar.simulate`."""
from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import sys
import threading
import time

from .common import UsageError

GRACE_S = 2  # seconds uvicorn waits for the requests in flight after Ctrl-C
ECHO_S = 0.2  # a SIGINT this soon after the first is the same Ctrl-C, not a second one


def _seconds(text: str) -> float:
    try:
        value = float(text) if text.isascii() else float("nan")  # not other scripts' digits
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return value


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port number 0..65535, got {text!r}")
    return int(text)


def setup_arguments(subparsers) -> argparse.ArgumentParser:
    """Add ``serve`` to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``fastvar`` command's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    from ..serve import DEFAULT_MAX_SECONDS

    parser = subparsers.add_parser(
        "serve", help="open a page that runs simulations live (needs fastvar[serve])",
        description="A local web page to explore a simulation: controls for the network and "
        "the run, q and g through depth with error bars and the theory, histograms, and "
        "downloads. Needs pip install 'fastvar[serve]'; works offline. Ctrl-C stops it.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_port, default=8000,
                        help="port (default 8000; 0 picks a free one and prints it)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("--max-seconds", type=_seconds, default=DEFAULT_MAX_SECONDS,
                        help="refuse requests whose estimated run time exceeds this "
                        f"(default {DEFAULT_MAX_SECONDS:g})")
    parser.set_defaults(func=run)
    return parser


def loopback(host: str) -> bool:
    """Whether a host is reachable from this machine only.

    Parameters
    ----------
    host : str
        A host name or address.

    Returns
    -------
    bool
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket.

    Parameters
    ----------
    host : str
        Host name or address.
    port : int
        Port (0: a free one).

    Returns
    -------
    socket.socket

    Raises
    ------
    UsageError
        The address cannot be listened on (the message says why).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise UsageError(f"--host {host}: {err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {host} port {port}: {err.strerror or err}"
                         + ("; try --port 0 (any free port)" if port else "")) from None
    return sock


def run(args: argparse.Namespace) -> int:
    """Run ``fastvar serve`` until Ctrl-C.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status (0: done).
    """
    try:
        import uvicorn

        from ..serve import create_app, warm_up
    except ImportError as err:
        raise ImportError(f"fastvar serve needs {err.name}: pip install 'fastvar[serve]'"
                          ) from None
    import warnings

    from ..results import IncompleteStatisticsWarning

    # the page shows a result's warnings from its JSON; the terminal needs no copy
    warnings.simplefilter("ignore", IncompleteStatisticsWarning)
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    host = f"[{args.host.strip('[]')}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}/"
    if not loopback(args.host):
        print(f"fastvar serve: warning: listening on {args.host}: anyone who can reach this "
              f"machine on port {port} can run simulations on it", file=sys.stderr)
    print("fastvar: loading the kernels (compiled once, then cached)", file=sys.stderr,
          flush=True)
    warm_up()
    app = create_app(args.max_seconds, warm=False)

    class Server(uvicorn.Server):
        """uvicorn's, stopping the simulations at the first Ctrl-C (they would hold its
        graceful shutdown for as long as they run) and exiting at once at the second."""

        first = None  # time.monotonic() of the first signal

        def handle_exit(self, sig, frame) -> None:
            now = time.monotonic()
            if self.first is not None:
                # an interrupted numba compile can deliver one Ctrl-C twice, at once
                if sig == signal.SIGINT and now - self.first > ECHO_S:
                    _exit_now("fastvar: stopped (second Ctrl-C: not waiting)", 130)
                return
            self.first = now
            super().handle_exit(sig, frame)
            app.state.slots.stop()

    # a simulation stops within a chunk of work (about 0.25 s); GRACE_S bounds the wait
    server = Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                   timeout_graceful_shutdown=GRACE_S))
    print(f"fastvar: serving on {url}", flush=True)
    print("fastvar: Ctrl-C stops it", file=sys.stderr, flush=True)
    if not args.no_browser:
        import webbrowser

        threading.Timer(0.5, webbrowser.open, (url,)).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has shut down and passes the signal on
        pass
    finally:
        sock.close()
    if threading.current_thread() is threading.main_thread():  # a Ctrl-C from now on
        signal.signal(signal.SIGINT, lambda *_: _exit_now(
            "fastvar: stopped (second Ctrl-C: not waiting)", 130))
    if app.state.slots.workers.running():  # a long chunk, still running: do not wait
        _exit_now("fastvar: stopped", 0)
    print("fastvar: stopped", file=sys.stderr)
    return 0


def _exit_now(message: str, status: int) -> None:
    """Print ``message`` and end the process now, whatever its threads are doing (a daemon
    thread inside a numba kernel may not let the interpreter finish)."""
    print(message, file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
