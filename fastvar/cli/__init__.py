"""The ``fastvar`` command line: ``fastvar simulate``, ``fastvar sweep`` and friends.

One module per subcommand (each with ``setup_arguments`` and ``run``), the option groups
they share in :mod:`fastvar.cli.common` (made from :mod:`fastvar.options`), and the process
plumbing in :mod:`fastvar.cli.entry`. NumPy, Numba and the kernels load only once the
parser is built, inside :func:`main`'s error handling, so that Ctrl-C or a bad ``NUMBA_*``
variable always ends in one line, never a traceback.
"""
from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from .entry import UsageError, exit_process, guard, notices

if TYPE_CHECKING:
    import argparse

__all__ = ["UsageError", "announcement", "build_parser", "entry", "main", "parse_grid"]
# names loaded on first use: the console script imports only this module and .entry before
# guard() is in place (a Ctrl-C during a longer import would end in a traceback)
_LAZY = {"announcement": "common", "parse_grid": "sweep"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_parser() -> "argparse.ArgumentParser":
    """The argparse parser of the ``fastvar`` command.

    Returns
    -------
    argparse.ArgumentParser
        With a subcommand per module of :mod:`fastvar.cli`.
    """
    from .. import __version__
    from . import bench, explain, info, serve, simulate, sweep
    from .common import Parser

    parser = Parser(prog="fastvar", description="How variance of signals and gradients "
                    "propagates through deep random networks at initialization, measured by "
                    "Monte Carlo.")
    parser.add_argument("--version", action="version", version=f"fastvar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    simulate.setup_arguments(sub)
    sweep.setup_arguments(sub)
    explain.setup_arguments(sub)
    info.setup_arguments(sub)
    bench.setup_arguments(sub)
    serve.setup_arguments(sub)
    return parser


def main(argv: "list[str] | None" = None) -> int:
    """Entry point of the ``fastvar`` command.

    Parameters
    ----------
    argv : list of str or None
        The arguments (default: ``sys.argv[1:]``); none runs ``intro``, options alone
        run ``simulate``.

    Returns
    -------
    int
        The exit status: 0 done, 2 an error (said in one line), 130 interrupted.
    """
    def body(name) -> int:
        from .._env import check_numba_threads

        check_numba_threads()  # before anything imports numba, which would not say it so
        parser = build_parser()
        args = list(sys.argv[1:] if argv is None else argv)
        if not args:
            args = ["intro"]  # a bare `fastvar` answers the question people come with
        elif args[0].startswith("-") and args[0] not in ("-h", "--help", "--version"):
            args.insert(0, "simulate")  # `fastvar [options]` runs a study
        parsed = parser.parse_args(args)
        name(f"fastvar {parsed.command}")
        with notices(quiet=getattr(parsed, "quiet", False)):
            return parsed.func(parsed)

    return guard(body)


def entry() -> None:
    """The ``fastvar`` console script and ``python -m fastvar``: :func:`main`, then exit."""
    exit_process(main)
