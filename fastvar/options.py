"""Every option of a request, declared once: name, default, range, help text, parser.

An option is a field of a frozen dataclass carrying an :class:`Option` in its metadata:
:class:`fastvar.Network`'s fields (the network), :class:`RunOptions` (how a study draws its
trials: seed, engine, inputs, ...) and :class:`Execution` (where and how it runs: progress,
checkpoint, client). Everything else follows from these declarations:

* :func:`fastvar.simulate`, :func:`fastvar.api.plan`, :func:`fastvar.api.estimate` and
  :func:`fastvar.sweep` take the options as keywords, validated here, and their signatures
  and parameter docs are built from them (:func:`takes_options`);
* the keys of a sweep's grid are the network's fields
  (``fastvar.network.NETWORK_OPTIONS``), :data:`SHAPE_OPTIONS` (mlp's width,
  depth, input_width) and the run options that may vary;
* the command line's options (``fastvar simulate``, ``fastvar sweep``) are made from the same
  declarations, with their text parsers (:mod:`fastvar.cli.common`).

Adding an option means declaring it here (or as a Network field) and implementing it; the
API, sweeps, the command line and the checks follow. This module imports nothing heavy: the
command line builds its parser from it before NumPy and Numba load.
"""
from __future__ import annotations

import dataclasses
import decimal
import inspect
import os
import textwrap
from typing import Any, Callable, Sequence

from ._checks import check_int

MAX_SEED = (1 << 64) - 1
MAX_INPUTS_PER_NETWORK = 1 << 20


@dataclasses.dataclass(frozen=True)
class Option:
    """The declaration of one option.

    Attributes
    ----------
    name : str
        The Python keyword (``--name-with-dashes`` on the command line).
    default : object
        The value when the option is left out.
    doc : str
        The numpydoc entry: its first line is the type, the rest the description.
    help : str
        One line for ``--help``.
    parse : callable or None
        Command-line text -> value (raises ValueError with a message); None: no
        command-line option.
    metavar : str or None
        The placeholder shown by ``--help``.
    sweep : str
        ``"grid"``: a sweep may vary it; ``"fixed"``: shared by all configurations only;
        ``"no"``: not a configuration keyword.
    ranges : bool
        A sweep's command line may give it as ``a:b:n`` (n evenly spaced numbers).
    read : callable or None
        Parsed command-line value -> the API's value, once the command runs (e.g. the data
        set a file name names); raises ValueError with a message.
    """

    name: str
    default: Any
    doc: str
    help: str
    parse: "Callable[[str], Any] | None" = None
    metavar: "str | None" = None
    sweep: str = "grid"
    ranges: bool = False
    read: "Callable[[Any], Any] | None" = None

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--inputs-per-network``."""
        return "--" + self.name.replace("_", "-")


_KEY = "fastvar.option"


def declare(default: Any, doc: str, help: str, *, parse: "Callable[[str], Any] | None" = None,
            metavar: "str | None" = None, sweep: str = "grid", ranges: bool = False,
            read: "Callable[[Any], Any] | None" = None, required: bool = False) -> Any:
    """A dataclass field declaring an option (see :class:`Option`); its name is the field's.

    Parameters
    ----------
    default : object
        The value when the option is left out. A ``required`` field has no default in the
        dataclass: ``default`` is then what the command line shows when it is left out.
    doc : str
        The numpydoc entry: its first line the type, the rest (indented) the description.
    help : str
        One line for ``--help``.
    parse : callable or None
        Command-line text -> value; None: no command-line option.
    metavar : str or None
        The placeholder shown by ``--help``.
    sweep : {"grid", "fixed", "no"}
        Whether a sweep may vary it, only share it, or not take it at all.
    ranges : bool
        A sweep's command line may give it as ``a:b:n``.
    read : callable or None
        Parsed command-line value -> the API's value, once the command runs.
    required : bool
        No default in the dataclass.

    Returns
    -------
    dataclasses.Field
        The field, its :class:`Option` declaration in its metadata.
    """
    spec = dict(default=default, doc=textwrap.dedent(doc).strip(), help=help, parse=parse,
                metavar=metavar, sweep=sweep, ranges=ranges, read=read)
    if required:
        return dataclasses.field(metadata={_KEY: spec})
    return dataclasses.field(default=default, metadata={_KEY: spec})


def options_of(cls: type) -> tuple[Option, ...]:
    """The options declared by the fields of a dataclass.

    Parameters
    ----------
    cls : type
        A dataclass whose fields were made by :func:`declare` (others are skipped).

    Returns
    -------
    tuple of Option
        In field order.
    """
    return tuple(Option(name=f.name, **f.metadata[_KEY]) for f in dataclasses.fields(cls)
                 if _KEY in f.metadata)


# --------------------------------------------------------------- command-line text

def _ascii(text: str) -> str:
    """``text`` itself if it is ASCII: Python reads digits of other scripts as numbers."""
    if not text.isascii():
        raise ValueError(f"expected a number in ASCII digits (0-9), got {text!r}")
    return text


def count(text: str) -> int:
    """A whole number, also written 1e6 or 20_000, read exactly (not through a float).

    Parameters
    ----------
    text : str
        Command-line text.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        The text is no whole number, or has non-ASCII digits.
    """
    _ascii(text)
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = decimal.Decimal(text.strip())  # 1234567890123456789e0 stays exact
    except decimal.InvalidOperation:
        value = decimal.Decimal("nan")
    # adjusted(): the decimal exponent of the leading digit (at most 4300 digits, as int())
    if not value.is_finite() or value.adjusted() > 4300 or value != value.to_integral_value():
        raise ValueError(f"expected whole numbers such as 8 or 1e6, got {text!r}")
    return int(value)


def real(text: str) -> float:
    """A real number.

    Parameters
    ----------
    text : str
        Command-line text.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        The text is no number.
    """
    try:
        return float(_ascii(text))
    except ValueError:
        raise ValueError(f"expected a number in ASCII digits, got {text!r}") from None


def number_or_name(text: str) -> "float | str":
    """A number if the text reads as one, else the text (a scheme name, checked later).

    Parameters
    ----------
    text : str
        Command-line text.

    Returns
    -------
    float or str
    """
    if not text.isascii():
        return text  # no number: a name, refused where it is checked
    try:
        return float(text)
    except ValueError:
        return text


def name(text: str) -> str:
    """A name, kept as written (checked where it is used).

    Parameters
    ----------
    text : str
        Command-line text.

    Returns
    -------
    str
        ``text`` itself.
    """
    return text


def boolean(text: str) -> bool:
    """``true`` or ``false``, in any case.

    Parameters
    ----------
    text : str
        Command-line text.

    Returns
    -------
    bool

    Raises
    ------
    ValueError
        Anything else.
    """
    if text.lower() not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


def correlation_value(text: str) -> "float | str":
    """A number in [-1, 1] or ``rows``.

    Parameters
    ----------
    text : str
        Command-line text (the range is checked by :func:`fastvar.api.plan`).

    Returns
    -------
    float or str
        The number, or ``"rows"``.

    Raises
    ------
    ValueError
        Neither a number nor ``rows``.
    """
    if text == "rows":
        return text
    try:
        return float(_ascii(text))
    except ValueError:
        raise ValueError(f"expected a number in [-1, 1] or 'rows', got {text!r}") from None


def widths_value(text: str) -> list[int]:
    """Widths separated by commas, e.g. ``784,256,10``.

    Parameters
    ----------
    text : str
        Command-line text.

    Returns
    -------
    list of int
        n_0, n_1, ..., n_L (checked by :class:`fastvar.Network`).

    Raises
    ------
    ValueError
        A part is no integer.
    """
    _ascii(text)
    try:
        return [int(w) for w in text.split(",")]
    except ValueError:
        raise ValueError(f"expected integers separated by commas, got {text!r}") from None


def inputs_file(path: str):
    """A data set from a .npy file or a .csv file of numbers (no header).

    Parameters
    ----------
    path : str
        The file; its extension (.npy or .csv) says how to read it.

    Returns
    -------
    numpy.ndarray
        The rows, shape (rows, n_0) for a .csv file (as stored for a .npy file; checked
        by :func:`fastvar.api.plan`).

    Raises
    ------
    ValueError
        Another extension, or a file that cannot be read as a table of numbers.
    """
    import numpy as np

    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".csv"):
        raise ValueError(f"{path}: give a .npy or .csv file")
    try:
        if ext == ".csv":
            return np.loadtxt(path, delimiter=",", ndmin=2)
        with open(path, "rb") as file:
            valid = file.read(6) == b"\x93NUMPY"  # else np.load suggests allow_pickle
        if valid:
            return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        if "allow_pickle" in str(err):  # an array of Python objects: never unpickled
            raise ValueError(f"{path}: holds Python objects, not numbers") from None
        raise ValueError(f"{path}: cannot read it as a table of numbers ({err})") from None
    raise ValueError(f"{path}: not a valid .npy array file (damaged, or another format)")


# ------------------------------------------------------------------ the declarations

#: mlp()'s shape keywords: a sweep or the command line may give these instead of widths
SHAPE_OPTIONS: tuple[Option, ...] = (
    Option("width", 256, "int\n    Units per layer.", "units per layer (default 256)",
           parse=count, ranges=True),
    Option("depth", 20, "int\n    Number of layers.", "number of layers (default 20)",
           parse=count, ranges=True),
    Option("input_width", None, "int\n    Input units (default: width).",
           "input units (default: --width)", parse=count, ranges=True),
)


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a study draws its trials: the options that, with the network, fix the numbers.

    Each field is checked on its own here; :func:`fastvar.api.plan` checks them against the
    network (input width, pairs, trials).

    Parameters
    ----------
    {options}

    Raises
    ------
    TypeError, ValueError
        A field of the wrong type or out of range.
    """

    seed: "int | None" = declare(0, """
        int or None
            Seed of the random streams, 0 <= seed < 2**64; None draws one (kept in the
            result).""", "random seed (default 0)", parse=count, sweep="no")
    engine: str = declare("auto", """
        str
            ``"auto"`` (the fastest engine that supports the request), or an engine name:
            ``"numpy"`` (reference) and the Numba engines listed by ``fastvar info``.""",
        "auto, numpy, or a Numba engine (see fastvar info)", parse=name)
    inputs: Any = declare("normal", """
        "normal", 1-D array or 2-D array
            Fresh x ~ N(0, I) per trial; one fixed input of length n_0; or a data set of
            shape (rows, n_0) whose rows are drawn uniformly at random per trial.""",
        "a data set (.npy, or .csv of numbers without header), one input per row: rows are "
        "drawn at random; its columns set the input width unless --input-width is given "
        "(default: fresh N(0, I) inputs)", parse=name, read=inputs_file,
        metavar="FILE",
        sweep="fixed")
    inputs_per_network: "int | None" = declare(None, """
        int or None
            k inputs share each drawn network; ``trials`` must be a multiple of k. Default 1,
            or 2 with ``correlation``.""",
        "inputs sharing each network (default 1; 2 with --correlation)", parse=count,
        ranges=True)
    gradients: bool = declare(True, """
        bool
            Also run the backward pass from a N(0, I) cotangent at the output.""",
        "skip the backward pass", parse=boolean)
    histograms: bool = declare(False, """
        bool
            Also count per-layer histograms of z, a and (with ``gradients``) delta, on bins
            fixed before the run in units of each layer's infinite-width scale
            (:class:`fastvar.Histogram`, ``Result.histogram``); the other numbers are
            unchanged.""",
        "also count per-layer histograms of z, a and delta (see Result.histogram)",
        parse=boolean, sweep="fixed")
    correlation: "float | str | None" = declare(None, """
        float in [-1, 1], "rows" or None
            Feed each network a pair of inputs and measure the cosine c^l of their
            pre-activations per layer (columns ``c_mean``, ``c_mean_se``, ``c_theory``). A
            number c0 pairs x ~ N(0, I) with x' = c0 x + sqrt(1 - c0^2) xi, xi ~ N(0, I)
            independent; ``"rows"`` pairs two distinct rows of the data set ``inputs``,
            drawn uniformly (c0 is then the mean cosine over pairs of distinct rows,
            ``Result.input_correlation``). ``trials`` still counts forward passes: it must
            be even, and ``inputs_per_network`` is 2.""",
        "feed each network a pair of N(0, I) inputs with correlation C0 in [-1, 1] ('rows': "
        "two distinct rows of --inputs) and measure their cosine c per layer (trials must "
        "be even)", parse=correlation_value, metavar="C0", ranges=True)
    jacobian: bool = declare(False, """
        bool
            Also measure, per layer, the spectrum of each input's input-output Jacobian
            J^l = D^l W^l ... D^1 W^1 (D^k = diag(phi'(z^k))): the mean m1 and normalized
            spread m2 / m1^2 - 1 of its squared singular values and its largest singular
            value, averaged over networks (columns ``jac_m1``, ``jac_spread``, ``jac_max``
            with SEs; ``jac_m1_theory`` and ``jac_spread_theory``, infinite width). Costs
            O(L n^3) per input (an n x n Jacobian per layer): the numpy and direct engines
            (auto picks direct); not with correlation, residual streams or norms.""",
        "also measure the spectrum of the input-output Jacobian per layer (O(L n^3) per "
        "input; columns jac_m1, jac_spread, jac_max)", parse=boolean, sweep="no")
    threads: "int | None" = declare(None, """
        int or None
            Numba threads for this call (restored afterwards); results do not depend on
            it.""", "numba threads (results do not depend on it)", parse=count,
        sweep="fixed")

    def __post_init__(self) -> None:
        if self.seed is not None:
            object.__setattr__(self, "seed", check_int("seed", self.seed, 0, MAX_SEED))
        if not isinstance(self.engine, str):
            raise TypeError(f"engine must be a name such as 'auto', got {self.engine!r}")
        if self.inputs_per_network is not None:
            object.__setattr__(self, "inputs_per_network", check_int(
                "inputs_per_network", self.inputs_per_network, 1, MAX_INPUTS_PER_NETWORK))
        _switches(self, ("gradients", "histograms", "jacobian"))
        if self.threads is not None:
            import numba

            object.__setattr__(self, "threads", check_int(
                "threads", self.threads, 1, numba.config.NUMBA_NUM_THREADS))


def _switches(options: Any, names: Sequence[str]) -> None:
    """Check that the fields ``names`` of a frozen dataclass are True or False (Python's or
    NumPy's bool), and store them as bool."""
    for name in names:
        value = getattr(options, name)
        if type(value).__name__ not in ("bool", "bool_"):
            raise TypeError(f"{name} must be True or False, got {value!r}")
        object.__setattr__(options, name, bool(value))


@dataclasses.dataclass(frozen=True)
class Execution:
    """Where and how a study runs; none of these changes its numbers.

    Parameters
    ----------
    {options}
    """

    progress: bool = declare(False, """
        bool
            Show a tqdm progress bar on stderr (it starts after the kernels are ready). With
            a bar, or when stderr is a terminal, a compile of the kernels (first use; they
            are then cached) that lasts over a second is announced there.""",
        "progress bar even when stderr is no TTY")
    checkpoint: "str | os.PathLike | None" = declare(None, """
        path or None
            A folder (created if missing) where completed work is saved as the run goes
            (:mod:`fastvar.checkpoint`). The same call again resumes from it, and its result
            is bitwise that of an uninterrupted run; a checkpoint of another request is
            refused. Needs a fixed ``seed``. The folder is kept afterwards: delete it to
            start over.""",
        "save completed work in folder DIR as the run goes; the same command again resumes "
        "there (bitwise the uninterrupted result)", parse=name, metavar="DIR")
    client: Any = declare(None, """
        dask.distributed.Client or None
            Run the blocks as tasks on this Dask cluster (:mod:`fastvar.dask_runner`, needs
            ``pip install 'fastvar[dask]'``); bitwise the same result as a local run.""",
        "", parse=None)

    def __post_init__(self) -> None:
        _switches(self, ("progress",))


RUN_OPTIONS: tuple[Option, ...] = options_of(RunOptions)
EXECUTION_OPTIONS: tuple[Option, ...] = options_of(Execution)


def split_options(kwargs: dict[str, Any], groups: Sequence[Sequence[Option]],
                  caller: str) -> list[dict[str, Any]]:
    """Split keyword arguments by option group.

    Parameters
    ----------
    kwargs : dict
        Keyword arguments, by name.
    groups : sequence of sequences of Option
        The option groups, e.g. ``[RUN_OPTIONS, EXECUTION_OPTIONS]``.
    caller : str
        The function's name, for the error message.

    Returns
    -------
    list of dict
        One dict per group, of the keywords declared in it.

    Raises
    ------
    TypeError
        An unknown keyword; the message lists the known ones.
    """
    out: list[dict[str, Any]] = [{} for _ in groups]
    for key, value in kwargs.items():
        for group, chosen in zip(groups, out):
            if any(option.name == key for option in group):
                chosen[key] = value
                break
        else:
            known = ", ".join(option.name for group in groups for option in group)
            raise TypeError(f"{caller}() got an unexpected keyword argument {key!r}; its "
                            f"options are {known}")
    return out


def takes_options(*groups: Sequence[Option]) -> Callable:
    """Decorate a function taking ``**options`` with the options declared in ``groups``.

    Its signature (for ``help()``, IDEs and the API docs) lists the declared options as
    keyword-only parameters with their defaults, and ``{options}`` in its docstring becomes
    their numpydoc entries.

    Parameters
    ----------
    *groups : sequence of Option
        The option groups, in the order they are listed.

    Returns
    -------
    callable
        The decorator; it returns the function itself, its signature and docstring set.
    """
    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)
        params = [p for p in signature.parameters.values() if p.kind != p.VAR_KEYWORD]
        params += [inspect.Parameter(option.name, inspect.Parameter.KEYWORD_ONLY,
                                     default=option.default)
                   for group in groups for option in group]
        func.__signature__ = signature.replace(parameters=params)
        _fill_options(func, groups)
        return func

    return decorate


def _fill_options(obj: Any, groups: Sequence[Sequence[Option]]) -> None:
    """Replace ``{options}`` in the docstring of ``obj`` (indented by 4, as a function's or
    a class's) by the numpydoc entries of the options in ``groups``."""
    if obj.__doc__ and "{options}" in obj.__doc__:
        entries = []
        for group in groups:
            for option in group:
                kind, _, text = option.doc.partition("\n")
                entries.append(f"    {option.name} : {kind}\n"
                               + textwrap.indent(textwrap.dedent(text), " " * 8))
        obj.__doc__ = obj.__doc__.replace("{options}", "\n".join(entries).lstrip())


# the classes' Parameters, from the same declarations
_fill_options(RunOptions, [RUN_OPTIONS])
_fill_options(Execution, [EXECUTION_OPTIONS])
