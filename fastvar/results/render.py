"""A Result as text: its header, the per-layer table with ± standard errors, and the notes
and warnings under it (for a terminal, ``repr`` and notebooks)."""
from __future__ import annotations

import html
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .. import _text, finite_width
from .._checks import check_int
from .columns import layer_ranges

if TYPE_CHECKING:
    from .result import Result

TABLE_WIDTH = 100  # characters: the default table fits a terminal
# phi(c z) = c phi(z) for c > 0 and z symmetric given the layer below: E[phi(z)^2] is then
# proportional to E[z^2] unit by unit, so E[q^l] is the mean-field map exactly at any width.
EXACT_MEAN_ACTIVATIONS = ("linear", "relu", "leaky_relu")


def describe(res: Result) -> str:
    """The header above the table (see :meth:`Result.describe`).

    Parameters
    ----------
    res : Result
        The result.

    Returns
    -------
    str
        Lines of at most 100 characters: the network; trials, seed, engine and time; how to
        read the table.
    """
    compiled = f" (+ {res.compile_s:.3g} s compiling)" if res.compile_s >= 0.5 else ""
    if res.theory_interrupted:
        compiled += " (theory interrupted)"
    elif res.theory_s >= 0.5:
        compiled += f" (+ {res.theory_s:.3g} s theory)"
    done = "PARTIAL result (interrupted): only " if res.partial else ""
    trials = _text.counted(res.trials, "trial")
    alone = " (n/a: one network has no spread)" if res.trials < 2 * res.inputs_per_network else ""
    text = (f"fastvar Result: {res.network.describe()}\n{done}{trials} "
            f"({res.inputs_per_network} per network), seed {res.seed}, engine {res.engine}, "
            f"{res.elapsed_s:.3g} s{compiled};\nvalues {_text.PLUS_MINUS} standard error{alone}, "
            "theory (measurement - theory in SE)")
    return "\n".join(wrap for line in text.split("\n") for wrap in _text.wrapped_at_commas(line))


def default_columns(res: Result, width: int = TABLE_WIDTH) -> list[str]:
    """The columns :func:`table` shows by default (see :meth:`Result.default_columns`).

    Parameters
    ----------
    res : Result
        The result.
    width : int
        Characters the table may take.

    Returns
    -------
    list of str
        Column names, after layer and width.
    """
    if res.jacobian_stats is not None:  # the Jacobian's spectrum first, then what fits
        names = ["jac_m1", "jac_m1_theory", "jac_spread", "jac_spread_theory"]
        for extra in ("jac_max", "q_mean"):
            if len(_table_lines(res, names + [extra], None)[0]) <= width:
                names.append(extra)
        return names
    names = ["q_mean", "q_theory"]
    names += ["c_mean", "c_theory"] if res.input_correlation is not None else []
    names += ["g_mean", "g_theory"] if res.gradients else []
    for extra in ("a_var", "dead_frac", "z_kurt"):  # most telling first
        if extra == "dead_frac" and not (res["dead_frac"] > 0).any():
            continue
        if len(_table_lines(res, names + [extra], None)[0]) <= width:
            names.append(extra)
    return names


def table(res: Result, columns: "Sequence[str] | None" = None,
          max_rows: "int | None" = 40) -> str:
    """The per-layer text table of ``res``, warnings and notes under it.

    See :meth:`Result.table`.

    Parameters
    ----------
    res : Result
        The result.
    columns : sequence of str or None
        Columns after layer and width (None: :func:`default_columns`).
    max_rows : int or None
        Keep the first and last layers of a deeper network (None: all).

    Returns
    -------
    str
        Lines of at most :data:`TABLE_WIDTH` characters (wider tables continue in blocks).

    Raises
    ------
    ValueError
        An unknown column, or ``max_rows`` below 2.
    """
    columns = default_columns(res) if columns is None else list(columns)
    unknown = [name for name in columns if name not in res.columns]
    if unknown:
        raise ValueError(f"no column {unknown[0]!r}; columns are {', '.join(res.columns)}")
    if max_rows is not None:
        max_rows = check_int("max_rows", max_rows, 2, 1 << 62)
    lines = _table_lines(res, columns, max_rows, TABLE_WIDTH)
    for warning in res.warnings:
        lines += _text.wrapped("warning: ", warning)
    note = theory_note(res)
    if note:
        lines += _text.wrapped("note: ", note)
    finite = [name for name in columns if name in finite_width.COLUMNS]
    if finite:
        lines += _text.wrapped("note: ", finite_width.note(
            res.network, finite, normal_inputs=res.fresh_inputs,
            rows=res.input_q0_rows is not None and res.input_q0_rows[0].size > 1,
            gradients=res.gradients, assumed=res.normal_inputs is None))
    return "\n".join(lines)


def _cell(res: Result, name: str, i: int) -> str:
    """Column ``name`` of layer ``i + 1`` as text: value±SE where it has an SE column, a
    theory with how many SE the measurement lies from it."""
    value = res[name][i]
    if res[name].dtype.kind == "b":
        return "yes" if value else "no"
    if res[name].dtype.kind in "iu":
        return str(value)
    if name.endswith("_theory"):  # the theory, and how many SE the measurement is off
        measured = name[:-len("_theory")]  # z_kurt, q_var, g_var; else q_mean, g_mean, c_mean
        measured += "" if measured in res.columns else "_mean"
        se = res[measured + "_se"][i] if measured + "_se" in res.columns else np.nan
        with np.errstate(invalid="ignore", over="ignore"):
            off = res[measured][i] - value
            gap = off / se if se > 0 else np.nan
            if abs(off) <= 1e-12 * max(abs(res[measured][i]), abs(value)):
                gap = 0.0  # equal to rounding: an exact case (an SE of 1e-18 made it -73 SE)
        if not np.isfinite(gap):
            return f"{value:.4g}"
        return f"{value:.4g} ({gap:+.1f})" if abs(gap) < 1e4 else f"{value:.4g} ({gap:+.1e})"
    if not np.isfinite(value):
        return str(value)
    if name + "_se" in res.columns:
        se = res[name + "_se"][i]
        return f"{value:.4g}{_text.PLUS_MINUS}{'n/a' if np.isnan(se) else f'{se:.2g}'}"
    return f"{value:.4g}"


def _table_lines(res: Result, columns: list[str], max_rows: "int | None",
                 fit: "int | None" = None) -> list[str]:
    """The header line and one line per layer (incomplete layers marked *, layers with
    unreliable SEs !), right-aligned; beyond ``max_rows`` layers, the first and last halves;
    wider than ``fit`` characters, in blocks of columns that fit (``_text.table_lines``)."""
    heads = ["layer", "width"] + columns
    layer, width, complete = res["layer"], res["width"], res["complete"]
    heavy = res["q_heavy_tails"] | res["g_heavy_tails"]
    if "jac_heavy_tails" in res.columns:
        heavy = heavy | res["jac_heavy_tails"]
    rows = [[f"{layer[i]}{'' if complete[i] else '*'}{'!' if heavy[i] else ''}", str(width[i])]
            + [_cell(res, name, i) for name in columns] for i in range(res.network.depth)]
    if max_rows is not None and len(rows) > max_rows:
        half = max_rows // 2
        rows = rows[:half] + [["..."] * len(heads)] + rows[-half:]
    return _text.table_lines(heads, rows, keep=2, width=fit)


def theory_note(res: Result) -> str:
    """Why q departs from the theory by > 5 SE at some complete layers, if it does.

    Parameters
    ----------
    res : Result
        The result.

    Returns
    -------
    str
        One sentence ("" when q agrees with the theory within 5 SE everywhere).
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        far = res["complete"] & (np.abs(res["q_mean"] - res["q_theory"]) > 5 * res["q_mean_se"])
        spread = float(np.nanmax(res["q_var"][far] / res["q_mean"][far] ** 2, initial=0.0))
    if not far.any():
        return ""
    where = f"q departs from the theory by > 5 SE at {layer_ranges(far)}"
    heavy = (f"; q over networks is heavy-tailed there (relative variance up to {spread:.3g}): "
             "its sample mean usually falls short of the truth and its SE is unreliable, "
             "and more trials help only slowly")
    net = res.network
    if net.activation_fn.name in EXACT_MEAN_ACTIVATIONS and net.norm is None:
        return (f"{where}; for {net.activation} the theory gives E[q] exactly at "
                f"any width, so the gap is sampling error{heavy if spread > 1 else ''}")
    if spread > 1:
        return where + heavy
    return (f"{where}; the theory is the infinite-width limit; at finite width n the gap "
            "shrinks like 1/n")


def to_html(res: Result) -> str:
    """``repr(res)`` for notebooks (Jupyter shows it instead of the text).

    Parameters
    ----------
    res : Result
        The result.

    Returns
    -------
    str
        The text table in an HTML ``<pre>`` element, escaped.
    """
    return f"<pre>{html.escape(repr(res))}</pre>"
