"""The ``fastvar`` command line: ``fastvar simulate``, ``fastvar info`` and friends.

Bad input exits with status 2 and one line on stderr, never a traceback; Ctrl-C at any
moment prints one line and exits with 130. For that this module imports nothing heavy at
the top: NumPy, Numba and the kernels load inside :func:`main`'s handlers.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import warnings
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .network import Network

_owns_process = False  # set by entry(): main() runs the whole process, not a caller's call
DEFAULT_WIDTH, DEFAULT_DEPTH, DEFAULT_TRIALS = 256, 20, 20_000  # seconds on the exact engine
ANNOUNCE_SECONDS = 60.0  # runs estimated to take longer say so on stderr before they start


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error (and exit status 2) instead of the usage text."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(Exception):
    """A bad command-line value: reported as one line, exit status 2."""


def _init_value(text: str) -> "str | float":
    try:
        return float(text)
    except ValueError:
        return text


def count(text: str) -> int:
    """An integer option that also accepts 1e6 and 20_000."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}")
    return int(value)


def check_outputs(**paths: "str | None") -> None:
    """Fail before any work if an output path cannot be written (or drawn, for ``plot``).

    ``paths`` maps option names (json, csv, plot) to their values; None means not asked
    for, and "-" (stdout) is allowed for ``json`` only. Two options naming one file are
    refused (unless written through, like /dev/stdout): the second would replace the first.
    """
    from ._files import check_output

    written = {}
    for option, path in paths.items():
        if path is None or (option == "json" and path == "-"):
            continue
        if path == "-":
            raise UsageError(f"--{option} - (stdout) is not supported; only --json - is")
        if path == "":
            raise UsageError(f"--{option} is empty; give a file name")
        if option == "plot":
            from .plotting import check_image_output

            check_image_output(path)
        target = check_output(path)
        if target.path in written and not target.in_place:  # /dev/stdout twice is fine
            raise UsageError(f"--{written[target.path]} and --{option} name the same file {path}")
        written[target.path] = option


def _residual(text: str) -> "float | str":
    try:
        return float(text)
    except ValueError:
        return text  # a named scaling such as 1/sqrt(L), checked by Network


def _widths(text: str) -> list[int]:
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--widths must be integers separated by commas, got {text!r}") from None


def add_network_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that describe a Network (shared by subcommands)."""
    g = parser.add_argument_group("network")
    g.add_argument("--width", type=count, default=None, help=f"units per layer (default {DEFAULT_WIDTH})")
    g.add_argument("--depth", type=count, default=None, help=f"number of layers (default {DEFAULT_DEPTH})")
    g.add_argument("--input-width", type=count, default=None, help="input units (default: --width)")
    g.add_argument("--widths", type=_widths, default=None, help="all widths, e.g. 784,256,256,10")
    # the defaults are fastvar.Network's, so the CLI and Python agree
    g.add_argument("--activation", default="relu",
                   help="linear, relu, leaky_relu, tanh, sigmoid, gelu, silu, elu, selu, softplus "
                   "or erf; slope or alpha (-1000..1000) in brackets: leaky_relu(0.2), elu(0.5) "
                   "(default relu)")
    g.add_argument("--init", type=_init_value, default="he",
                   help="lecun, xavier, he, orthogonal, or sigma_w^2 as a number, 1e-200..1e200 "
                   "(default he)")
    g.add_argument("--distribution", default="normal", help="normal, uniform, truncated_normal")
    g.add_argument("--gain", type=float, default=1.0,
                   help="gain of the init scheme, 1e-100..1e100 (default 1)")
    g.add_argument("--bias-std", type=float, default=0.0,
                   help="std of the biases, 0 or 1e-100..1e100 (default 0)")
    g.add_argument("--residual", type=_residual, default=None, metavar="ALPHA",
                   help="a pre-norm residual stream h^l = h^{l-1} + ALPHA (W phi(N(h)) + b): a "
                   "number > 0, 1/sqrt(L) or 1/L (default: none, a plain network)")
    g.add_argument("--norm", default=None, choices=["layer", "rms"],
                   help="LayerNorm or RMSNorm before each layer after the first (default none)")
    g.add_argument("--norm-eps", type=float, default=0.0,
                   help="added to the mean square inside the norm's root (default 0)")


def network_from_args(args: argparse.Namespace) -> Network:
    """Build the Network described by :func:`add_network_arguments` options."""
    from .network import Network, mlp

    common = dict(activation=args.activation, init=args.init, distribution=args.distribution,
                  gain=args.gain, bias_std=args.bias_std, residual=args.residual,
                  norm=args.norm, norm_eps=args.norm_eps)
    if args.widths is not None:
        if any(v is not None for v in (args.width, args.depth, args.input_width)):
            raise UsageError("give either --widths or --width/--depth/--input-width, not both")
        return Network(args.widths, **common)
    width = DEFAULT_WIDTH if args.width is None else args.width
    depth = DEFAULT_DEPTH if args.depth is None else args.depth
    return mlp(width, depth, input_width=args.input_width, **common)


def announcement(cost, threshold: "float | None" = None) -> "str | None":
    """The stderr line for a run whose :class:`fastvar.api.Estimate` exceeds ``threshold``
    seconds (default ANNOUNCE_SECONDS), else None."""
    if cost.seconds <= (ANNOUNCE_SECONDS if threshold is None else threshold):
        return None
    return f"fastvar: this run will take {cost.describe()}; Ctrl-C stops it"


def _correlation(text: str) -> "float | str":
    if text == "rows":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [-1, 1] or 'rows', got {text!r}"
                                         ) from None


def _layers(text: str) -> "int | None":
    if text == "all":
        return None
    value = count(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"expected 'all' or a number of rows >= 2, got {text!r}")
    return value


def load_inputs(path: str):
    """A data set (rows, n_0) from a .npy file or a .csv file of numbers (no header)."""
    import numpy as np

    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".csv"):
        raise UsageError(f"--inputs {path}: give a .npy or .csv file")
    try:
        if ext == ".npy":
            data = np.load(path, allow_pickle=False)
        else:
            data = np.loadtxt(path, delimiter=",", ndmin=2)
    except (OSError, ValueError) as err:
        raise UsageError(f"--inputs {path}: cannot read it as a table of numbers ({err})") from None
    return data


def _cmd_simulate(args: argparse.Namespace) -> int:
    from .api import estimate, simulate
    from .results import COLUMNS, IncompleteStatisticsWarning
    from .runs import Interrupted

    net = network_from_args(args)
    check_outputs(json=args.json, csv=args.csv, plot=args.plot)
    columns = None
    if args.columns is not None:
        columns = [name.strip() for name in args.columns.split(",") if name.strip()]
        known = COLUMNS + ("q_theory", "g_theory", "c_theory")
        unknown = [name for name in columns if name not in known]
        if unknown or not columns:
            raise UsageError(f"--columns: unknown column {unknown[0] if unknown else '(none)'!r};"
                             f" choose from {', '.join(known[2:])}")
    inputs = "normal" if args.inputs is None else load_inputs(args.inputs)
    show_bar = args.progress or (sys.stderr.isatty() and not args.quiet)
    line = announcement(estimate(net, args.trials, seed=args.seed, engine=args.engine,
                                 inputs=inputs, inputs_per_network=args.inputs_per_network,
                                 correlation=args.correlation, gradients=not args.no_gradients,
                                 threads=args.threads))
    if line:
        print(line, file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        # the table prints these under it; with --json - they go to stderr below
        warnings.simplefilter("ignore", IncompleteStatisticsWarning)
        try:
            res = simulate(net, args.trials, seed=args.seed, engine=args.engine, inputs=inputs,
                           inputs_per_network=args.inputs_per_network,
                           correlation=args.correlation, gradients=not args.no_gradients,
                           threads=args.threads, progress=show_bar, checkpoint=args.checkpoint)
        except Interrupted as stop:
            if stop.result is not None:  # the blocks done so far, marked partial
                _report(args, stop.result, columns)
            raise  # main() says "fastvar: interrupted" and exits with 130
    _report(args, res, columns)
    return 0


def _report(args: argparse.Namespace, res, columns: "list[str] | None") -> None:
    """Write the --json/--csv/--plot files of ``res``, then print it."""
    # files first: a closed stdout (e.g. `| head`) must not cost the user their outputs
    written = []
    if args.json and args.json != "-":
        res.to_json(args.json)
        written.append(args.json)
    if args.csv:
        res.to_csv(args.csv)
        written.append(args.csv)
    if args.plot:
        from .plotting import save

        save(res, args.plot)
        written.append(args.plot)
    for path in written:
        print(f"fastvar: wrote {path}", file=sys.stderr)
    if args.json == "-":
        for line in res.warnings:
            print(f"fastvar simulate: warning: {line}", file=sys.stderr)
        print(res.to_json())
    else:
        print(res.describe() + "\n" + res.table(columns, max_rows=args.layers))


def _cmd_intro(args: argparse.Namespace) -> int:
    from .explain import first_look

    print(first_look(seed=args.seed))
    return 0


# grid key -> how one value is read; numbers where a number is meant, names kept as text
_GRID_TYPES = {"width": "int", "depth": "int", "input_width": "int", "inputs_per_network": "int",
               "gain": "float", "bias_std": "float", "correlation": "float", "init": "init",
               "activation": "str", "distribution": "str", "engine": "str", "gradients": "bool",
               "residual": "init", "norm": "str", "norm_eps": "float"}


def _grid_value(key: str, text: str) -> "str | int | float | bool":
    kind = _GRID_TYPES[key]
    if kind == "str":
        return text
    if kind == "bool":
        if text.lower() not in ("true", "false"):
            raise UsageError(f"--grid {key}: expected true or false, got {text!r}")
        return text.lower() == "true"
    if kind == "init":
        return _init_value(text)
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"--grid {key}: expected a number, got {text!r}") from None
    if kind == "int":
        if not value.is_integer():
            raise UsageError(f"--grid {key}: expected whole numbers, got {text!r}")
        return int(value)
    return value


def parse_grid(specs: "list[str]") -> dict[str, list]:
    """``--grid KEY=a:b:n`` (n evenly spaced values from a to b) or ``KEY=v1,v2,...``."""
    grid: dict[str, list] = {}
    for spec in specs:
        key, sep, text = spec.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key or not text:
            raise UsageError(f"--grid takes KEY=a:b:n or KEY=v1,v2,..., got {spec!r}")
        if key not in _GRID_TYPES:
            raise UsageError(f"--grid {key}: unknown key; choose one of {', '.join(_GRID_TYPES)}")
        if key in grid:
            raise UsageError(f"--grid {key} is given twice; give all its values at once")
        if text.count(":") == 2 and _GRID_TYPES[key] in ("int", "float", "init"):
            import numpy as np

            a, b, n = text.split(":")
            start, stop = (_grid_value("gain", a), _grid_value("gain", b))  # plain numbers
            try:
                n = count(n)
            except argparse.ArgumentTypeError:
                n = 0
            if n < 1:
                raise UsageError(f"--grid {key}={text}: n must be a whole number >= 1")
            if n == 1 and start != stop:
                raise UsageError(f"--grid {key}={text}: one value cannot span {a} to {b}")
            values = [float(v) for v in np.linspace(start, stop, n)]
            grid[key] = [_grid_value(key, repr(v)) for v in values]
        else:
            grid[key] = [_grid_value(key, v.strip()) for v in text.split(",")]
    return grid


# grid keys that are also options of `fastvar sweep` (gradients is --no-gradients)
_SWEPT_OPTIONS = tuple(k for k in _GRID_TYPES if k != "gradients")


def _cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps import SweepInterrupted, sweep

    if not args.grid:
        raise UsageError("give at least one --grid KEY=a:b:n or KEY=v1,v2,...")
    grid = parse_grid(args.grid)
    if args.widths is not None:
        raise UsageError("--widths cannot be combined with a sweep; use --width/--depth")
    fixed = {"width": DEFAULT_WIDTH if args.width is None else args.width,
             "depth": DEFAULT_DEPTH if args.depth is None else args.depth,
             "input_width": args.input_width, "activation": args.activation,
             "init": args.init, "distribution": args.distribution, "gain": args.gain,
             "bias_std": args.bias_std, "residual": args.residual, "norm": args.norm,
             "norm_eps": args.norm_eps, "correlation": args.correlation,
             "inputs_per_network": args.inputs_per_network, "engine": args.engine,
             "gradients": not args.no_gradients}
    for key in grid:
        # an option left at its default yields to the grid; one set by hand conflicts
        if key in _SWEPT_OPTIONS and getattr(args, key) != args.parser.get_default(key):
            raise UsageError(f"--{key.replace('_', '-')} and --grid {key} both set {key}; "
                             "give it once")
        fixed.pop(key, None)
    fixed = {k: v for k, v in fixed.items() if v is not None}
    engine = fixed.pop("engine", "auto")
    check_outputs(json=args.json, csv=args.csv, plot=args.plot)
    axes = [k for k in grid if len(grid[k]) > 1] or list(grid)[:1]
    if args.plot and len(axes) > 2:
        raise UsageError(f"--plot draws one or two swept keys, and {', '.join(axes)} vary; "
                         "plot from Python with Sweep.plot(x, y, where={...})")
    show_bar = args.progress or (sys.stderr.isatty() and not args.quiet)
    try:
        result = sweep(grid, args.trials, seed=args.seed, engine=engine,
                       checkpoint=args.checkpoint, progress=show_bar, **fixed)
    except SweepInterrupted as err:
        where = f" (finished ones are in {args.checkpoint})" if args.checkpoint else ""
        if len(err.partial):  # the finished configurations, as for a whole sweep
            _report_sweep(args, err.partial, axes, grid, plot=False)
        print(f"fastvar sweep: interrupted after {len(err.partial)} configurations{where}",
              file=sys.stderr)
        raise
    _report_sweep(args, result, axes, grid, plot=bool(args.plot))
    return 0


def _report_sweep(args: argparse.Namespace, result, axes: list, grid: dict, plot: bool) -> None:
    """Write the --json/--csv (and --plot) files of a Sweep, then print it."""
    if args.json and args.json != "-":
        result.to_json(args.json)
    if args.csv:
        result.to_csv(args.csv)
    if plot:
        from .plotting import save_sweep

        value = args.plot_value or ("xi_c" if args.correlation is not None
                                    or "correlation" in grid else "log_q_ratio")
        save_sweep(result, args.plot, axes[0], axes[1] if len(axes) > 1 else None, value=value)
    print(result.to_json() if args.json == "-" else f"{result!r}\n{result.table()}")


def _cmd_explain(args: argparse.Namespace) -> int:
    from .explain import DEFAULT_WIDTHS, save_histograms, walkthrough

    check_outputs(plot=args.plot)
    text, found = walkthrough(args.width or DEFAULT_WIDTHS, depth=args.depth,
                              depth_width=args.depth_width, trials=args.trials, seed=args.seed)
    print(text)
    if args.plot:
        save_histograms(found, args.plot)
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    import numba
    import numpy

    from . import __version__
    from .engines import ENGINES

    try:
        layer = numba.threading_layer()
    except ValueError:
        layer = "not initialised yet (no parallel kernel has run)"
    cache = numba.config.CACHE_DIR or "__pycache__ next to the package modules"
    print(f"fastvar {__version__}\nPython {sys.version.split()[0]}\nnumpy {numpy.__version__}\n"
          f"numba {numba.__version__}\nnumba threads {numba.get_num_threads()} "
          f"(NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}, cores {os.cpu_count()})\n"
          f"threading layer {layer}\ncache dir {cache}\nengines:")
    for engine in sorted(ENGINES.values(), key=lambda e: -e.priority):
        print(f"  {engine.name:8s} {engine.summary}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``fastvar`` command."""
    parser = _Parser(
        prog="fastvar", description="How variance of signals and gradients propagates through deep "
        "random networks at initialization, measured by Monte Carlo.")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"fastvar {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sim = sub.add_parser("simulate", help="run a Monte Carlo study and print per-layer statistics",
                         description="Per-layer mean, variance and moments of pre-activations, "
                         "activations and gradients, with standard errors.")
    add_network_arguments(sim)
    run = sim.add_argument_group("run")
    run.add_argument("--trials", type=count, default=DEFAULT_TRIALS,
                     help=f"forward passes (default {DEFAULT_TRIALS})")
    run.add_argument("--seed", type=count, default=0, help="random seed (default 0)")
    run.add_argument("--engine", default="auto", help="auto, numpy, or a Numba engine (see fastvar info)")
    run.add_argument("--inputs-per-network", type=count, default=None,
                     help="inputs sharing each network (default 1; 2 with --correlation)")
    run.add_argument("--correlation", type=_correlation, default=None, metavar="C0",
                     help="feed each network a pair of N(0, I) inputs with correlation C0 in "
                     "[-1, 1] ('rows': two distinct rows of --inputs) and measure their cosine "
                     "c per layer (trials must be even)")
    run.add_argument("--inputs", metavar="FILE", default=None,
                     help="a data set (.npy, or .csv of numbers without header), one input per "
                     "row: rows are drawn at random (default: fresh N(0, I) inputs)")
    run.add_argument("--no-gradients", action="store_true", help="skip the backward pass")
    run.add_argument("--threads", type=count, default=None, help="numba threads (results do not depend on it)")
    run.add_argument("--progress", action="store_true", help="progress bar even when stderr is no TTY")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument("--checkpoint", metavar="DIR", default=None,
                     help="save completed blocks in folder DIR as the run goes; the same "
                     "command again resumes there (bitwise the uninterrupted result)")
    out = sim.add_argument_group("output")
    out.add_argument("--columns", metavar="A,B,...", default=None,
                     help="table columns after layer and width, e.g. q_mean,q_theory,z_kurt "
                     "(default: those that differ, fitting 100 characters)")
    out.add_argument("--layers", type=_layers, default=40, metavar="N|all",
                     help="table rows: the first and last N/2 layers (default 40), or all")
    out.add_argument("--json", metavar="PATH", help="write the result as JSON to PATH ('-' for stdout only)")
    out.add_argument("--csv", metavar="PATH", help="write the per-layer table as CSV to PATH")
    out.add_argument("--plot", metavar="PNG", help="draw q and g per layer with the theory to PNG "
                     "(needs matplotlib: pip install 'fastvar[plot]')")
    sim.set_defaults(func=_cmd_simulate)
    swp = sub.add_parser("sweep", help="simulate over a grid of configurations",
                         description="Run simulate over the cartesian product of --grid values "
                         "(each configuration with its own stable seed); print one line per "
                         "configuration with the measured depth scales.")
    swp.add_argument("--grid", action="append", metavar="KEY=SPEC",
                     help="a swept keyword: KEY=a:b:n (n values from a to b) or KEY=v1,v2,...; "
                     f"repeatable. Keys: {', '.join(_GRID_TYPES)}")
    add_network_arguments(swp)
    run = swp.add_argument_group("run")
    run.add_argument("--trials", type=count, default=2000,
                     help="forward passes per configuration (default 2000)")
    run.add_argument("--seed", type=count, default=0, help="seed of the sweep (default 0)")
    run.add_argument("--engine", default="auto", help="auto, numpy, or a Numba engine")
    run.add_argument("--inputs-per-network", type=count, default=None,
                     help="inputs sharing each network (default 1; 2 with --correlation)")
    run.add_argument("--correlation", type=float, default=None, metavar="C0",
                     help="pairs of inputs with correlation C0: measures c^l and xi_c")
    run.add_argument("--no-gradients", action="store_true", help="skip the backward pass")
    run.add_argument("--checkpoint", metavar="DIR", help="folder of finished configurations: "
                     "a rerun with the same folder resumes")
    run.add_argument("--progress", action="store_true",
                     help="progress bar even when stderr is no TTY")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    out = swp.add_argument_group("output")
    out.add_argument("--json", metavar="PATH", help="the sweep as JSON ('-' for stdout only); "
                     "fastvar.load reads it back")
    out.add_argument("--csv", metavar="PATH", help="tidy CSV: one row per configuration x layer")
    out.add_argument("--plot", metavar="PNG", help="heatmap over the first two grid keys (with "
                     "the order-to-chaos line for init x bias_std), or lines over one")
    out.add_argument("--plot-value", choices=("log_q_ratio", "log_g_ratio", "c", "xi_c", "xi_q"),
                     help="what --plot draws (default xi_c with pairs, else log_q_ratio)")
    swp.set_defaults(func=_cmd_sweep, parser=swp)
    exp = sub.add_parser("explain", help="why tiny weights keep signals and gradients steady",
                         description="A walk-through with measured numbers: one layer's weights, "
                         "products w x and sums z at a few widths, then depth and gradients.")
    exp.add_argument("--width", type=count, action="append",
                     help="a width of the one-layer part; repeat for more (default 6 10 100 1000)")
    exp.add_argument("--depth", type=count, default=30, help="layers of the depth part (default 30)")
    exp.add_argument("--depth-width", type=count, default=100,
                     help="width of the depth part (default 100)")
    exp.add_argument("--trials", type=count, default=200,
                     help="networks per case of the depth part (default 200)")
    exp.add_argument("--seed", type=count, default=0, help="random seed (default 0)")
    exp.add_argument("--plot", metavar="PNG", help="histograms of w, w x and z per width to PNG")
    exp.set_defaults(func=_cmd_explain)
    intro = sub.add_parser("intro", help="what a bare `fastvar` runs: Xavier vs He, side by side",
                           description="One ReLU network of 20 layers of width 256 under Xavier "
                           "and under He: why tiny weights keep the signal (seconds).")
    intro.add_argument("--seed", type=count, default=0, help="random seed (default 0)")
    intro.set_defaults(func=_cmd_intro)
    info = sub.add_parser("info", help="versions, threads, threading layer, cache dir, engines")
    info.set_defaults(func=_cmd_info)
    from . import bench

    bench.add_parser(sub)
    return parser


def main(argv: "list[str] | None" = None) -> int:
    """Entry point of the ``fastvar`` command; returns the exit status."""
    from ._env import check_numba_threads

    command = "fastvar"
    previous_hook = sys.unraisablehook
    sys.unraisablehook = _reraise_interrupt(previous_hook)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            check_numba_threads()  # before anything imports numba, which would not say it so
            parser = build_parser()
            argv = list(sys.argv[1:] if argv is None else argv)
            if not argv:
                argv = ["intro"]  # a bare `fastvar` answers the question people come with
            elif argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version"):
                argv.insert(0, "simulate")  # `fastvar [options]` runs a study
            args = parser.parse_args(argv)
            command = f"fastvar {args.command}"
            return args.func(args)
    except BrokenPipeError:
        # the reader went away (`fastvar ... | head`): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, TypeError, MemoryError, ImportError, OSError) as err:
        print(f"{command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if _owns_process:
            import signal

            # a second SIGINT follows the first at times (seen while numba loads kernels)
            # and would kill the process by the signal before it exits with 130
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("fastvar: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.unraisablehook = previous_hook


def entry() -> None:
    """The ``fastvar`` console script and ``python -m fastvar``: :func:`main`, then exit.

    It owns the process, so after main() it ignores Ctrl-C: one that lands while Python
    shuts down (or a second one that LLVM re-raises) would kill the process by the signal,
    with no line said, instead of the exit status main() returned.
    """
    import signal

    global _owns_process
    _owns_process = True
    status = 130
    try:
        status = main()
    except KeyboardInterrupt:  # in the instructions around main()'s own handler
        print("fastvar: interrupted", file=sys.stderr)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    if status == 130:
        # an interrupted compile leaves LLVM objects whose finalizers print tracebacks at
        # interpreter shutdown: after the one line, leave without that shutdown
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)
    sys.exit(status)


def _reraise_interrupt(previous):
    def hook(unraisable) -> None:
        if not issubclass(unraisable.exc_type, KeyboardInterrupt):
            previous(unraisable)
            return
        # A Ctrl-C inside a callback from C (llvmlite's object cache, while numba loads a
        # kernel) is printed and dropped by ctypes, and the run would go on. Raise it again
        # in the main thread once this hook has returned: raised in here, it would be dropped.
        import _thread
        import threading

        timer = threading.Timer(0.01, _thread.interrupt_main)
        timer.daemon = True
        timer.start()

    return hook


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    # a command's warning is one line; where in fastvar it was raised does not help the user
    print(f"fastvar: warning: {message}", file=sys.stderr if file is None else file)


if __name__ == "__main__":
    entry()
