"""``fastvar sweep``: simulate over a grid of configurations, one line per configuration."""
from __future__ import annotations

import argparse
import math
import sys

from .._text import counted
from ..network import NETWORK_OPTIONS
from ..options import RUN_OPTIONS, SHAPE_OPTIONS, Option, count, real
from .common import (UsageError, add_network_options, add_output_options, add_run_options,
                     announcement, check_outputs, given, run_options_from_args,
                     scheduler_client, shape_defaults, shape_from_args, show_progress,
                     write_outputs)

DEFAULT_TRIALS = 2000
PLOT_VALUES = ("log_q_ratio", "log_g_ratio", "c", "xi_c", "xi_q")


# run options a sweep does not take (its --seed is its own): not offered
NOT_TAKEN = tuple(o.name for o in RUN_OPTIONS if o.sweep == "no" and o.name != "seed")


def grid_options() -> dict[str, Option]:
    """The keys a grid may sweep.

    Returns
    -------
    dict of str to Option
        Every declared option (shape, network, run) that a sweep may vary, by name.
    """
    return {option.name: option for option in SHAPE_OPTIONS + NETWORK_OPTIONS + RUN_OPTIONS
            if option.sweep == "grid"}


def setup_arguments(subparsers) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand.

    Parameters
    ----------
    subparsers : argparse subparsers action
        What ``ArgumentParser.add_subparsers`` returned.

    Returns
    -------
    argparse.ArgumentParser
        The subcommand's parser.
    """
    parser = subparsers.add_parser(
        "sweep", help="simulate over a grid of configurations",
        description="Run simulate over the cartesian product of --grid values (each "
        "configuration with its own stable seed); print one line per configuration with the "
        "measured depth scales.")
    parser.add_argument("--grid", action="append", metavar="KEY=SPEC",
                        help="a swept keyword: KEY=a:b:n (n values from a to b) or "
                        f"KEY=v1,v2,...; repeatable. Keys: {', '.join(grid_options())}")
    add_network_options(parser)
    add_run_options(parser, DEFAULT_TRIALS, "forward passes per configuration",
                    "seed of the sweep (default 0)",
                    skip=NOT_TAKEN)
    out = add_output_options(
        parser, json_help="the sweep as JSON ('-' for stdout only); fastvar.load reads it back",
        csv_help="tidy CSV: one row per configuration x layer",
        plot_help="heatmap over the first two grid keys (with the order-to-chaos line for "
        "init x bias_std), or lines over one")
    out.add_argument("--plot-value", choices=PLOT_VALUES,
                     help="what --plot draws (default xi_c with pairs, else log_q_ratio)")
    parser.set_defaults(func=run)
    return parser


def _value(option: Option, text: str):
    try:
        return option.parse(text)
    except ValueError as err:
        raise UsageError(f"--grid {option.name}: {err}") from None


def parse_grid(specs: "list[str]") -> dict[str, list]:
    """Read the ``--grid`` options.

    Parameters
    ----------
    specs : list of str
        Each ``KEY=a:b:n`` (n evenly spaced values from a to b, for numeric keys) or
        ``KEY=v1,v2,...``.

    Returns
    -------
    dict of str to list
        The grid: key -> its values, parsed as the key's option parses them.

    Raises
    ------
    UsageError
        For an unknown key, a key given twice or a value that does not parse, naming it.
    """
    options = grid_options()
    grid: dict[str, list] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not text:
            raise UsageError(f"--grid takes KEY=a:b:n or KEY=v1,v2,..., got {spec!r}")
        if key not in options:
            raise UsageError(f"--grid {key}: unknown key; choose one of {', '.join(options)}")
        if key in grid:
            raise UsageError(f"--grid {key} is given twice; give all its values at once")
        option = options[key]
        if text.count(":") == 2 and option.ranges:
            import numpy as np

            from ..sweeps import MAX_CONFIGURATIONS

            a, b, n = text.split(":")
            bounds = []
            for end in (a, b):
                try:
                    bounds.append(real(end))
                except ValueError as err:
                    raise UsageError(f"--grid {key}={text}: {err}") from None
                if not math.isfinite(bounds[-1]):
                    raise UsageError(f"--grid {key}={text}: the ends must be finite numbers")
            try:
                n = count(n)
            except ValueError:
                n = 0
            if n < 1:
                raise UsageError(f"--grid {key}={text}: n must be a whole number >= 1")
            if n > MAX_CONFIGURATIONS:  # before n values fill the memory
                raise UsageError(f"--grid {key}={text}: n must be at most "
                                 f"{MAX_CONFIGURATIONS}, the most configurations a sweep "
                                 "takes")
            if n == 1 and bounds[0] != bounds[1]:
                raise UsageError(f"--grid {key}={text}: one value cannot span {a} to {b}")
            grid[key] = [_value(option, repr(float(v))) for v in np.linspace(*bounds, n)]
        else:
            grid[key] = [_value(option, v.strip()) for v in text.split(",")]
    return grid


def run(args: argparse.Namespace) -> int:
    """Run ``fastvar sweep``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status, 0.

    Raises
    ------
    UsageError
        For a bad grid or options, before any work.
    fastvar.SweepInterrupted
        On Ctrl-C, after printing (and writing) the finished configurations.
    """
    from ..interrupts import SweepInterrupted
    from ..sweeps import sweep, sweep_estimate

    if not args.grid:
        raise UsageError("give at least one --grid KEY=a:b:n or KEY=v1,v2,...")
    grid = parse_grid(args.grid)
    if args.widths is not None:
        raise UsageError("--widths cannot be combined with a sweep; use --width/--depth")
    for key in grid:
        if getattr(args, key) is not None:
            raise UsageError(f"--{key.replace('_', '-')} and --grid {key} both set {key}; "
                             "give it once")
    run_options = run_options_from_args(args, skip=NOT_TAKEN + ("seed",))
    shape = shape_defaults(shape_from_args(args, run_options.get("inputs")))
    # what every configuration shares: the declared defaults of what a grid could vary,
    # then what the command line gives
    fixed = {**{option.name: option.default for option in grid_options().values()}, **shape,
             **given(args, NETWORK_OPTIONS), **run_options}
    fixed = {k: v for k, v in fixed.items() if v is not None and k not in grid}
    engine = fixed.pop("engine", "auto")
    check_outputs(json=args.json, csv=args.csv, plot=args.plot)
    axes = [k for k in grid if len(grid[k]) > 1] or list(grid)[:1]
    if args.plot and len(axes) > 2:
        raise UsageError(f"--plot draws one or two swept keys, and {', '.join(axes)} vary; "
                         "plot from Python with Sweep.plot(x, y, where={...})")
    line = announcement(sweep_estimate(grid, args.trials, seed=args.seed, engine=engine,
                                       **fixed))
    if line:
        print(line.replace("this run", "this sweep"), file=sys.stderr, flush=True)
    try:
        with scheduler_client(args) as client:
            result = sweep(grid, args.trials, seed=args.seed, engine=engine, client=client,
                           checkpoint=args.checkpoint, progress=show_progress(args), **fixed)
    except SweepInterrupted as err:
        where = f" (finished ones are in {args.checkpoint})" if args.checkpoint else ""
        if len(err.partial):  # the finished configurations, as for a whole sweep
            report(args, err.partial, axes, grid, plot=False)
        print(f"fastvar sweep: interrupted after {counted(len(err.partial), 'configuration')}"
              f"{where}", file=sys.stderr)
        err.said = True  # main()'s "fastvar: interrupted" would say it twice
        raise
    report(args, result, axes, grid, plot=bool(args.plot))
    return 0


def report(args: argparse.Namespace, result, axes: list, grid: dict, plot: bool) -> None:
    """Write the --json/--csv (and --plot) files of a Sweep, then print it.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    result : Sweep
        The sweep (or the finished part of an interrupted one).
    axes : list of str
        The grid keys a plot draws (one or two).
    grid : dict
        The sweep's grid.
    plot : bool
        Draw --plot too.
    """
    def draw(path: str) -> None:
        from ..plotting import save_sweep

        value = args.plot_value or ("xi_c" if args.correlation is not None
                                    or "correlation" in grid else "log_q_ratio")
        save_sweep(result, path, axes[0], axes[1] if len(axes) > 1 else None, value=value)

    write_outputs(args, result, draw if plot else None)
    print(result.to_json() if args.json == "-" else result)
