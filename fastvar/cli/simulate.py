"""``fastvar simulate``: one Monte Carlo study, printed as a per-layer table."""
from __future__ import annotations

import argparse
import sys
import warnings

from .. import _text
from .common import (UsageError, add_network_options, add_output_options, add_run_options,
                     announcement, check_outputs, network_from_args, positive_count,
                     run_options_from_args, scheduler_client, show_progress,
                     write_outputs)

DEFAULT_TRIALS = 20_000  # seconds on the exact engine at the default network


DEFAULT_ROWS = 40  # table rows without --layers (--layers' own default 0 stands for it)


def _layers(text: str) -> "int | None":
    if text == "all":
        return None
    value = positive_count(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected 'all' or a number of rows >= 2, got {text!r}")
    return value


def setup_arguments(subparsers) -> argparse.ArgumentParser:
    """Add ``simulate`` to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``fastvar`` command's subcommands.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    parser = subparsers.add_parser(
        "simulate", help="run a Monte Carlo study and print per-layer statistics",
        description="Per-layer mean, variance and moments of pre-activations, activations and "
        "gradients, with standard errors.")
    add_network_options(parser)
    add_run_options(parser, DEFAULT_TRIALS, "forward passes", "random seed (default 0)")
    out = add_output_options(
        parser, json_help="write the result as JSON to PATH ('-' for stdout only)",
        csv_help="write the per-layer table as CSV to PATH",
        plot_help="draw q and g per layer with the theory to PNG (needs matplotlib: pip "
        "install 'fastvar[plot]')")
    out.add_argument("--columns", metavar="A,B,...", default=None,
                     help="table columns after layer and width, e.g. q_mean,q_theory,z_kurt "
                     "(default: those that differ, fitting 100 characters)")
    out.add_argument("--layers", type=_layers, default=0, metavar="N|all",
                     help="table rows: the first and last N/2 layers (default 40), or all")
    parser.set_defaults(func=run)
    return parser


def _columns(text: "str | None") -> "list[str] | None":
    from ..results import COLUMNS, THEORY_COLUMNS

    if text is None:
        return None
    columns = [name.strip() for name in text.split(",") if name.strip()]
    known = COLUMNS + THEORY_COLUMNS
    unknown = [name for name in columns if name not in known]
    if unknown or not columns:
        raise UsageError(f"--columns: unknown column {unknown[0] if unknown else '(none)'!r};"
                         f" choose from {', '.join(known[2:])}")
    return columns


def run(args: argparse.Namespace) -> int:
    """Run ``fastvar simulate``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status (0: done).
    """
    from ..api import estimate, simulate
    from ..results import IncompleteStatisticsWarning
    from ..interrupts import Interrupted

    options = run_options_from_args(args)
    net = network_from_args(args, options.get("inputs"))
    check_outputs(json=args.json, csv=args.csv, plot=args.plot)
    columns = _columns(args.columns)
    if args.layers and args.layers > net.depth:
        raise UsageError(f"--layers {args.layers}: the network has only "
                         f"{_text.counted(net.depth, 'layer')}; give at most {net.depth}, "
                         "or all")
    line = announcement(estimate(net, args.trials, **options))
    if line:
        print(line, file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        # the table prints these under it; with --json - they go to stderr below
        warnings.simplefilter("ignore", IncompleteStatisticsWarning)
        try:
            with scheduler_client(args) as client:
                res = simulate(net, args.trials, progress=show_progress(args),
                               checkpoint=args.checkpoint, client=client, **options)
        except Interrupted as stop:
            if stop.result is not None:  # the blocks done so far, marked partial
                report(args, stop.result, columns)
            raise  # main() says "fastvar: interrupted" and exits with 130
    report(args, res, columns)
    return 0


def report(args: argparse.Namespace, res, columns: "list[str] | None") -> None:
    """Write the --json/--csv/--plot files of ``res``, then print it.

    The theory columns are computed first; a Ctrl-C there still writes and prints the
    measurements (the theory NaN, with a warning line), then ends the command as
    interrupted.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line (its output options and --layers).
    res : Result
        The result.
    columns : list of str or None
        Table columns (None: the default ones).
    """
    interrupted = False
    try:
        res.compute_theory()
    except KeyboardInterrupt:
        interrupted = True
    # files first: a closed stdout (e.g. `| head`) must not cost the user their outputs
    from ..plotting import save

    write_outputs(args, res, lambda path: save(res, path))
    if args.json == "-":
        for line in res.warnings:
            print("\n".join(_text.wrapped("fastvar simulate: warning: ", line)),
                  file=sys.stderr)
        print(res.to_json())
    else:
        rows = DEFAULT_ROWS if args.layers == 0 else args.layers  # None: all
        print(res.describe() + "\n" + res.table(columns, max_rows=rows))
    if interrupted:
        raise KeyboardInterrupt
