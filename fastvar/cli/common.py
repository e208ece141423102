"""What the subcommands share: the parser class, usage errors, and the option groups.

The network, run and execution options are made from their declarations
(:mod:`fastvar.options`), so ``fastvar simulate`` and ``fastvar sweep`` take the same
options with the same parsing and help, and a new option reaches both.
"""
from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterable

from .entry import UsageError
from ..network import NETWORK_OPTIONS
from ..options import EXECUTION_OPTIONS, RUN_OPTIONS, SHAPE_OPTIONS, Option, count

if TYPE_CHECKING:
    from ..network import Network

ANNOUNCE_SECONDS = 60.0  # runs estimated to take longer say so on stderr before they start


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit status 2) instead of the usage text, and no
    abbreviations (``--inputs`` must not be read as ``--inputs-per-network``).

    Parameters
    ----------
    *args, **kwargs
        As for :class:`argparse.ArgumentParser` (``allow_abbrev`` defaults to False).
    """

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        """Exit with status 2 and one line: the message and where to read more (``--help``).

        Parameters
        ----------
        message : str
            What is wrong.
        """
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def text_type(option: Option):
    """The argparse ``type`` of an option: its declared parser, with argparse's error.

    Parameters
    ----------
    option : Option
        A declared option with a ``parse``.

    Returns
    -------
    callable
        Text -> value, raising :class:`argparse.ArgumentTypeError`; named as the option.
    """
    def parse(text: str):
        try:
            return option.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = option.name  # argparse names it in "invalid NAME value"
    return parse


def positive_count(text: str) -> int:
    """An argparse ``type``: a whole number (1e6 and 20_000 allowed).

    Parameters
    ----------
    text : str
        Command-line text.

    Returns
    -------
    int

    Raises
    ------
    argparse.ArgumentTypeError
        The text is no whole number.
    """
    try:
        return count(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _add(group, option: Option) -> None:
    # An option left out is None here, and the declared default applies where the options
    # are used: so "given by hand" is always "not None", whatever the default.
    if isinstance(option.default, bool):  # a switch that turns the default around
        flag = option.flag if not option.default else "--no-" + option.flag[2:]
        group.add_argument(flag, dest=option.name, action="store_false" if option.default
                           else "store_true", default=None, help=option.help)
        return
    group.add_argument(option.flag, type=text_type(option), default=None,
                       metavar=option.metavar, help=option.help)


def given(args: argparse.Namespace, options: Iterable[Option]) -> dict[str, Any]:
    """The options given on the command line, by name (those left out are not there).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments (an option left out is None).
    options : iterable of Option
        The options to look at.

    Returns
    -------
    dict
        Name -> parsed value.
    """
    return {option.name: getattr(args, option.name) for option in options
            if getattr(args, option.name) is not None}


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """The options that describe a Network: mlp's shape and Network's own fields.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Gets a "network" argument group.
    """
    group = parser.add_argument_group("network")
    for option in SHAPE_OPTIONS + NETWORK_OPTIONS:
        _add(group, option)


def shape_from_args(args: argparse.Namespace, inputs: Any = None) -> dict[str, Any]:
    """mlp's shape keywords as given (None where not).

    Without --input-width, a data set ``inputs`` (from --inputs FILE) gives the input width:
    its number of columns.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    inputs : array_like or None
        The data set read from --inputs.

    Returns
    -------
    dict
        ``width``, ``depth``, ``input_width``.
    """
    shape = {option.name: getattr(args, option.name) for option in SHAPE_OPTIONS}
    if shape["input_width"] is None and inputs is not None and not isinstance(inputs, str):
        shape["input_width"] = int(inputs.shape[-1]) if inputs.ndim else None
    return shape


def network_from_args(args: argparse.Namespace, inputs: Any = None) -> "Network":
    """The Network described by :func:`add_network_options` options.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    inputs : array_like or None
        The data set read from --inputs: its columns give the input width unless given
        (:func:`shape_from_args`).

    Returns
    -------
    Network

    Raises
    ------
    UsageError
        Options that make no network (the message names them).
    """
    from ..network import Network, mlp

    fields = given(args, NETWORK_OPTIONS)
    widths = fields.pop("widths", None)
    shape = shape_from_args(args, None if widths is not None else inputs)
    if widths is not None:
        if any(value is not None for value in shape.values()):
            raise UsageError("give either --widths or --width/--depth/--input-width, not both")
        return Network(widths, **fields)
    return mlp(**shape_defaults(shape), **fields)


def shape_defaults(shape: dict[str, Any]) -> dict[str, Any]:
    """A shape with the declared defaults where None.

    Parameters
    ----------
    shape : dict
        ``width``, ``depth``, ``input_width`` (None: not given).

    Returns
    -------
    dict
    """
    return {option.name: option.default if shape[option.name] is None else shape[option.name]
            for option in SHAPE_OPTIONS}


def add_run_options(parser: argparse.ArgumentParser, trials: int, trials_help: str,
                    seed_help: str, skip: Iterable[str] = ()):
    """``--trials`` and the run and execution options (fastvar.options), plus --quiet.

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Gets a "run" argument group.
    trials : int
        The default of --trials.
    trials_help : str
        Its help text.
    seed_help : str
        The help text of --seed.
    skip : iterable of str
        Options not offered.

    Returns
    -------
    argparse._ArgumentGroup
        The group.
    """
    group = parser.add_argument_group("run")
    group.add_argument("--trials", type=positive_count, default=trials,
                       help=f"{trials_help} (default {trials})")
    for option in RUN_OPTIONS + EXECUTION_OPTIONS:
        if option.name in skip or (option.parse is None and option.name != "progress"):
            continue
        if option.name == "seed":
            group.add_argument("--seed", type=text_type(option), default=option.default,
                               help=seed_help)
        else:
            _add(group, option)
    group.add_argument("--quiet", action="store_true", help="no progress bar")
    group.add_argument("--scheduler", metavar="ADDRESS", default=None,
                       help="run on the Dask scheduler at ADDRESS (tcp://HOST:8786, as `dask "
                       "scheduler` prints it, or its --scheduler-file); bitwise the local "
                       "result (needs fastvar[dask])")
    return group


@contextlib.contextmanager
def scheduler_client(args: argparse.Namespace):
    """A Dask client connected to ``--scheduler`` (closed afterwards), or None without it.

    Raises
    ------
    ImportError, OSError
        Without dask.distributed, or when no scheduler answers (within
        ``fastvar.dask_runner.CONNECT_SECONDS``), before any work.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments (``scheduler``, ``threads``).

    Yields
    ------
    distributed.Client or None

    Raises
    ------
    UsageError
        --threads with --scheduler.
    """
    if args.scheduler is None:
        yield None
        return
    if args.threads is not None:
        raise UsageError("--threads applies to local runs; with --scheduler each Dask worker "
                         "uses its own threads (dask worker --nthreads)")
    from ..dask_runner import connect

    client = connect(args.scheduler)
    try:
        yield client
    finally:
        client.close()


def run_options_from_args(args: argparse.Namespace, skip: Iterable[str] = ()) -> dict[str, Any]:
    """The run options (keywords of simulate) given on the command line, read.

    A file name becomes its data set.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.
    skip : iterable of str
        Options not taken.

    Returns
    -------
    dict

    Raises
    ------
    UsageError
        A file that cannot be read.
    """
    options = [option for option in RUN_OPTIONS if option.name not in skip]
    out = given(args, options)
    for option in options:
        if option.read is not None and option.name in out:
            try:
                out[option.name] = option.read(out[option.name])
            except ValueError as err:
                raise UsageError(f"{option.flag} {err}") from None
    return out


def show_progress(args: argparse.Namespace) -> bool:
    """A progress bar when asked, or on a terminal unless --quiet.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments.

    Returns
    -------
    bool
    """
    return bool(args.progress) or (sys.stderr.isatty() and not args.quiet)


def add_output_options(parser: argparse.ArgumentParser, json_help: str, csv_help: str,
                       plot_help: str):
    """--json, --csv and --plot (each checked before any work by :func:`check_outputs`).

    Parameters
    ----------
    parser : argparse.ArgumentParser
        Gets an "output" argument group.
    json_help, csv_help, plot_help : str
        Their help texts.

    Returns
    -------
    argparse._ArgumentGroup
        The group.
    """
    group = parser.add_argument_group("output")
    group.add_argument("--json", metavar="PATH", help=json_help)
    group.add_argument("--csv", metavar="PATH", help=csv_help)
    group.add_argument("--plot", metavar="PNG", help=plot_help)
    return group


def check_outputs(**paths: "str | None") -> None:
    """Fail before any work if an output path cannot be written (or drawn, for ``plot``).

    ``paths`` maps option names (json, csv, plot) to their values; None means not asked
    for, and "-" (stdout) is allowed for ``json`` only. Two options naming one file are
    refused (unless written through, like /dev/stdout): the second would replace the first.

    Parameters
    ----------
    **paths : str or None
        Option name -> path.

    Raises
    ------
    UsageError, ValueError, OSError
        A path that cannot be written, an image format matplotlib cannot draw, or two
        options naming one file.
    """
    from .._files import check_output

    written = {}
    for option, path in paths.items():
        if path is None or (option == "json" and path == "-"):
            continue
        if path == "-":
            raise UsageError(f"--{option} - (stdout) is not supported; only --json - is")
        if path == "":
            raise UsageError(f"--{option} is empty; give a file name")
        if option == "plot":
            from ..plotting import check_image_output

            check_image_output(path)
        target = check_output(path)
        if target.path in written and not target.in_place:  # /dev/stdout twice is fine
            raise UsageError(f"--{written[target.path]} and --{option} name the same file {path}")
        written[target.path] = option


def write_outputs(args: argparse.Namespace, result, draw: "Callable[[str], None] | None"
                  ) -> None:
    """Write a result to --json and --csv, and draw it to --plot.

    Each path written is said on stderr (``fastvar: wrote PATH``).

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments (``json``, ``csv``, ``plot``).
    result : Result or Sweep
        What to write.
    draw : callable or None
        ``draw(path)`` writes the picture (None: no --plot).
    """
    written = []
    if args.json and args.json != "-":
        result.to_json(args.json)
        written.append(args.json)
    if args.csv:
        result.to_csv(args.csv)
        written.append(args.csv)
    if args.plot and draw is not None:
        draw(args.plot)
        written.append(args.plot)
    for path in written:
        print(f"fastvar: wrote {path}", file=sys.stderr)


def announcement(cost, threshold: "float | None" = None) -> "str | None":
    """The stderr line for a long run.

    Parameters
    ----------
    cost : Estimate
        The run's estimate.
    threshold : float or None
        Seconds above which a run is announced (default ANNOUNCE_SECONDS).

    Returns
    -------
    str or None
        The line, or None for a shorter run.
    """
    if cost.seconds <= (ANNOUNCE_SECONDS if threshold is None else threshold):
        return None
    return f"fastvar: this run will take {cost.describe()}; Ctrl-C stops it"
