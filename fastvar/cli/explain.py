"""``fastvar explain`` and ``fastvar intro``: the two classic questions, with measured numbers."""
from __future__ import annotations

import argparse
import sys

from .common import check_outputs, positive_count


def setup_arguments(subparsers) -> None:
    """Add ``explain`` and ``intro`` to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The ``fastvar`` command's subcommands.
    """
    exp = subparsers.add_parser(
        "explain", help="why tiny weights keep signals and gradients steady",
        description="A walk-through with measured numbers: one layer's weights, products w x "
        "and sums z at a few widths, then depth and gradients.")
    exp.add_argument("--width", type=positive_count, action="append",
                     help="a width of the one-layer part; repeat for more (default 6 10 100 1000)")
    exp.add_argument("--depth", type=positive_count, default=30,
                     help="layers of the depth part (default 30)")
    exp.add_argument("--depth-width", type=positive_count, default=100,
                     help="width of the depth part (default 100)")
    exp.add_argument("--trials", type=positive_count, default=200,
                     help="networks per case of the depth part (default 200)")
    exp.add_argument("--seed", type=positive_count, default=0, help="random seed (default 0)")
    exp.add_argument("--plot", metavar="PNG", help="histograms of w, w x and z per width to PNG")
    exp.set_defaults(func=run_explain)
    intro = subparsers.add_parser(
        "intro", help="what a bare `fastvar` runs: Xavier vs He, side by side",
        description="One ReLU network of 20 layers of width 256 under Xavier and under He: why "
        "tiny weights keep the signal (seconds).")
    intro.add_argument("--seed", type=positive_count, default=0, help="random seed (default 0)")
    intro.set_defaults(func=run_intro)


def run_explain(args: argparse.Namespace) -> int:
    """Run ``fastvar explain``.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status (0: done).
    """
    from ..explain import DEFAULT_WIDTHS, save_histograms, walkthrough

    check_outputs(plot=args.plot)
    text, found = walkthrough(args.width or DEFAULT_WIDTHS, depth=args.depth,
                              depth_width=args.depth_width, trials=args.trials, seed=args.seed)
    print(text)
    if args.plot:
        save_histograms(found, args.plot)
        print(f"fastvar: wrote {args.plot}", file=sys.stderr)
    return 0


def run_intro(args: argparse.Namespace) -> int:
    """Run ``fastvar intro`` (and a bare ``fastvar``).

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.

    Returns
    -------
    int
        The exit status (0: done).
    """
    from ..explain import first_look

    print(first_look(seed=args.seed))
    return 0
