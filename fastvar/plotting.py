"""Pictures of Results: per-layer q and g, Monte Carlo +- SE beside the mean-field theory.

matplotlib is an optional extra (``pip install 'fastvar[plot]'``), imported only here and
only when a picture is asked for.
"""
from __future__ import annotations

import io
import math
import os
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ._files import check_output, write_file

if TYPE_CHECKING:  # results imports this module for Result.plot: no import back at run time
    from .results import Result

# quantity -> (measured column, its SE, theory column, axis label)
QUANTITIES = {
    "q": ("q_mean", "q_mean_se", "q_theory", r"signal  $q^l = \|z^l\|^2 / n_l$"),
    "g": ("g_mean", "g_mean_se", "g_theory",
          r"gradient  $g^l = \|\partial L / \partial z^l\|^2 / n_l$"),
    "c": ("c_mean", "c_mean_se", "c_theory", r"correlation  $c^l = \cos(z^l, z'^l)$"),
}
# marker, theory line: tells the quantities apart on one Axes
_STYLE = {"q": ("o", "-"), "g": ("s", "--"), "c": ("^", ":")}


def _has(res, kind: str) -> bool:
    """Whether Result ``res`` measured ``kind`` (g needs gradients, c input pairs)."""
    return {"g": res.gradients, "c": res.input_correlation is not None}.get(kind, True)


def _default_quantities(items) -> list[str]:
    return ["q", "g"] + (["c"] if any(_has(r, "c") for r in items) else [])


def _matplotlib():
    try:
        import matplotlib
        from matplotlib.figure import Figure  # noqa: F401 (fails early where the extra is absent)
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install 'fastvar[plot]'") from None
    return matplotlib


def image_format(path: "str | os.PathLike") -> str:
    """The matplotlib format named by a path's extension.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.

    Returns
    -------
    str
        "png", "svg", "pdf", ...

    Raises
    ------
    ValueError
        An extension matplotlib cannot write.
    ImportError
        matplotlib is not installed.
    """
    _matplotlib()
    from matplotlib.figure import Figure

    kinds = Figure().canvas.get_supported_filetypes()
    name = os.fsdecode(path)
    ext = os.path.splitext(name)[1].lstrip(".").lower()
    if ext not in kinds:
        raise ValueError(f"cannot draw {name}: name it .png, .svg, .pdf or another of "
                         f"{', '.join(kinds)}")
    return ext


def check_image_output(path: "str | os.PathLike") -> str:
    """Check, before drawing, that a path is writable and names an image format.

    Parameters
    ----------
    path : str or os.PathLike
        The image file.

    Returns
    -------
    str
        The format (:func:`image_format`).

    Raises
    ------
    ValueError, OSError
        What would make writing it fail, said before anything is drawn.
    """
    check_output(path)
    return image_format(path)


def write_figure(fig, path: "str | os.PathLike", dpi: int) -> None:
    """Render a figure in memory and write it to a path atomically (see :mod:`fastvar._files`).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or os.PathLike
        The file; its extension gives the format.
    dpi : int
        Resolution of raster formats.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format=image_format(path), dpi=dpi)
    write_file(path, buffer.getvalue())


def short_label(res) -> str:
    r"""A legend label for one Result: activation, init, gain, bias, width.

    Parameters
    ----------
    res : Result
        The result.

    Returns
    -------
    str
        E.g. ``"tanh, he, $\sigma_b$=0.1, n=256"`` (matplotlib mathtext).
    """
    net = res.network
    init = net.init if isinstance(net.init, str) else f"$\\sigma_w^2$={net.init:g}"
    gain = f" gain {net.gain:.3g}" if net.gain != 1.0 else ""
    bias = f", $\\sigma_b$={net.bias_std:g}" if net.bias_std else ""
    widths = set(net.widths[1:])
    width = f", n={widths.pop()}" if len(widths) == 1 else ""
    return f"{net.activation}, {init}{gain}{bias}{width}"


def _is_result(x) -> bool:
    # by what is drawn from it, as fastvar.results imports this module (Result.plot)
    return all(hasattr(x, name) for name in ("network", "gradients", "input_correlation",
                                             "columns", "warnings"))


def _as_list(results: "Result | Sequence[Result]") -> list[Result]:
    if isinstance(results, (list, tuple)):
        items = list(results)
    else:
        items = [results] if _is_result(results) else []
    if not items or not all(_is_result(r) for r in items):
        raise TypeError("results must be a fastvar Result or a non-empty sequence of them")
    return items


def plot(results, labels: "Sequence[str] | None" = None, ax=None,
         quantities: "Sequence[str] | None" = None) -> np.ndarray:
    """Per-layer q^l and g^l on a log axis (and the correlation c^l of input pairs on a
    linear one): Monte Carlo dots with +-1 SE bands, theory as lines.

    Parameters
    ----------
    results : Result or sequence of Result
        One colour each.
    labels : sequence of str, optional
        Legend labels, one per result (default: activation, init, gain, bias, width).
    ax : matplotlib Axes or sequence of Axes, optional
        One Axes per quantity, or a single Axes that gets them all (q dots and solid
        theory lines, g squares and dashed lines). Default: a new pyplot figure with
        one panel per quantity.
    quantities : sequence of "q", "g", "c", optional
        What to draw (default q and g, and c when a result has input pairs); "g" is left
        out for results run with ``gradients=False``, "c" for results without pairs.

    Returns
    -------
    numpy.ndarray of Axes, one per quantity.
    """
    items = _as_list(results)
    labels = [short_label(r) for r in items] if labels is None else list(labels)
    if len(labels) != len(items) or not all(isinstance(s, str) for s in labels):
        raise ValueError(f"labels must be {len(items)} strings, one per result, got {labels!r}")
    quantities = _default_quantities(items) if quantities is None else list(quantities)
    if not quantities or any(k not in QUANTITIES for k in quantities):
        raise ValueError(f"quantities must be a non-empty selection of {tuple(QUANTITIES)}, "
                         f"got {quantities}")
    for kind, how in (("g", "simulate with gradients=True"),
                      ("c", "simulate with correlation=c0 for input pairs")):
        if kind in quantities and not any(_has(r, kind) for r in items):
            if quantities == [kind]:
                raise ValueError(f"no result has {kind}; {how}")
            quantities.remove(kind)
    _matplotlib()
    from matplotlib.lines import Line2D

    if ax is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(quantities), figsize=(5.2 * len(quantities), 4.0),
                               squeeze=False, layout="constrained")
        axes = axes[0]
    else:
        if isinstance(ax, (str, bytes, os.PathLike)):
            raise TypeError(f"ax must be a matplotlib Axes, got the path {ax!r}; to write a file "
                            "use fastvar.plotting.save(results, path) or --plot PATH")
        axes = np.ravel(np.asarray(ax, dtype=object))
        if len(axes) == 1:
            axes = np.repeat(axes, len(quantities))
        elif len(axes) != len(quantities):
            raise ValueError(f"give one Axes, or one per quantity ({len(quantities)}), "
                             f"got {len(axes)}")
    shared = len(set(map(id, axes))) < len(axes)
    shown: dict = {}  # id(Axes) -> the finite values drawn on it: its range fits them all
    for kind, axis in zip(quantities, axes):
        mean_col, se_col, theory_col, ylabel = QUANTITIES[kind]
        marker, line = _STYLE[kind] if shared else ("o", "-")
        for i, (res, label) in enumerate(zip(items, labels)):
            if not _has(res, kind):
                continue
            color = f"C{i % 10}"
            layer, mean, se = res["layer"], res[mean_col], res[se_col]
            whole = res["complete"]
            with np.errstate(invalid="ignore"):
                axis.fill_between(layer, mean - se, mean + se, color=color, alpha=0.25, lw=0)
            axis.plot(layer[whole], mean[whole], marker, ms=3.5, color=color,
                      label=f"{kind}: {label}" if shared else label)
            if not whole.all():  # overflowed, underflowed or NaN: hollow, and said so
                axis.plot(layer[~whole], mean[~whole], marker, ms=5, color=color, mfc="none",
                          label="incomplete (Result.warnings)")
            theory = res[theory_col]
            axis.plot(layer, np.where(np.isfinite(theory), theory, np.nan), line, lw=1.2,
                      color=color)
            shown.setdefault(id(axis), []).append(np.concatenate([mean, theory]))
        axis.set_yscale("linear" if kind == "c" else "log")
        values = np.concatenate(shown.get(id(axis), [np.empty(0)]))
        values = values[np.isfinite(values) & ((values > 0) | (kind == "c"))]
        if kind != "c" and values.size:  # inf theory or NaN layers must not spoil the range
            axis.set_ylim(values.min() / 1.5, values.max() * 1.5)
        _plain_ticks(axis)
        axis.set_xlabel("layer $l$")
        axis.set_ylabel(ylabel if not shared else r"$q^l$ (dots), $g^l$ (squares)")
        axis.grid(True, which="major", alpha=0.3)
    for axis in dict.fromkeys(axes):  # each distinct Axes once, in order
        handles, _ = axis.get_legend_handles_labels()
        handles += [Line2D([], [], color="0.4", marker="o", ms=3.5, ls="none",
                           label="Monte Carlo ± 1 SE"),
                    Line2D([], [], color="0.4", label="mean-field theory ($n \\to \\infty$)")]
        axis.legend(handles=handles, fontsize="small")
    return np.asarray(axes, dtype=object)


def _plain_ticks(axis) -> None:
    """Whole layers on x; a log y axis labelled by log_ticks."""
    from matplotlib.ticker import MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axis.get_yscale() == "log":
        log_ticks(axis.yaxis)


def log_ticks(axis) -> None:
    """Label every decade of a log axis alike (10^k), with unlabelled ticks at 2..9 x 10^k;
    on a range of one to three decades, plain numbers at 1, 2 and 5 x 10^k; under a decade,
    plain numbers at 1..9 x 10^k (not 2.02x10^0).

    Parameters
    ----------
    axis : matplotlib Axis
        ``ax.yaxis`` or ``ax.xaxis`` of an Axes on a log scale, its limits already set.
    """
    from matplotlib.ticker import (FuncFormatter, LogFormatterSciNotation, LogLocator,
                                   NullFormatter)

    low, high = getattr(axis.axes, f"get_{axis.axis_name}lim")()  # autoscaled, unlike the Axis's
    # numticks: as many as the decades, so that none is skipped
    decades = int(np.ceil(np.log10(high / low))) + 2 if 0 < low < high else 10
    axis.set_major_locator(LogLocator(base=10, numticks=max(decades, 3)))
    axis.set_minor_locator(LogLocator(base=10, subs=np.arange(2, 10), numticks=max(decades, 3)))
    axis.set_major_formatter(LogFormatterSciNotation(base=10))
    axis.set_minor_formatter(NullFormatter())
    plain = FuncFormatter(lambda value, _: f"{value:.4g}")
    if 0 < low and high < 10 * low:  # under a decade: label the minor ticks too, plainly
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    elif 0 < low and high < 1000 * low:  # one decade label alone would be too sparse
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=3 * decades))
        axis.set_major_formatter(plain)


def save(results, path: "str | os.PathLike", labels: "Sequence[str] | None" = None,
         quantities: "Sequence[str] | None" = None, title: "str | None" = None) -> None:
    """Draw :func:`plot` on a figure of its own and write it to ``path`` (PNG, SVG, PDF...).

    Needs no display: the figure is not made through pyplot. ``path`` and its format are
    checked before anything is drawn; the file is written atomically.

    Parameters
    ----------
    results : Result or sequence of Result
        One colour each.
    path : str or os.PathLike
        The image file (PNG, SVG, PDF, ...).
    labels : sequence of str or None
        Legend labels, one per result.
    quantities : sequence of str or None
        The panels, as for :func:`plot`.
    title : str or None
        Figure title (default: the network of a single result).
    """
    check_image_output(path)
    from matplotlib.figure import Figure

    items = _as_list(results)
    quantities = _default_quantities(items) if quantities is None else list(quantities)
    panels = [k for k in quantities if any(_has(r, k) for r in items)] or quantities
    fig = Figure(figsize=(5.2 * len(panels), 4.0), layout="constrained")
    plot(items, labels, ax=fig.subplots(1, len(panels), squeeze=False)[0], quantities=panels)
    if title is None and len(items) == 1:
        title = items[0].network.describe()
    if title:
        fig.suptitle(title, fontsize="medium")
    write_figure(fig, path, dpi=110)


# ------------------------------------------------------------------ histograms

HISTOGRAM_LABELS = {"z": "pre-activation $z$", "a": r"activation $a = \phi(z)$",
                    "delta": r"backward signal $\delta = \partial L / \partial z$"}


def theory_bins(res, layer: int, of: str, edges: np.ndarray) -> np.ndarray:
    """Infinite-width probabilities of the bins ``edges`` at ``layer`` (1-based): z ~ N(0,
    q^l), delta ~ N(0, g^l), a = phi(u) with u ~ N(0, q^l) (after a norm, Var u = q / (q +
    eps)), by a fine quadrature of the normal (40 001 nodes over +-12 std). NaN where the
    theory is not finite.

    Parameters
    ----------
    res : Result
        The result.
    layer : int
        1 to L.
    of : {"z", "a", "delta"}
        The quantity.
    edges : numpy.ndarray
        Bin edges in value units, shape (B + 1,).

    Returns
    -------
    numpy.ndarray
        Probability of each bin, shape (B,).
    """
    net = res.network
    var = (res.g_theory if of == "delta" else res.q_theory)[layer - 1]
    if of == "a" and net.norm is not None:
        var = var / (var + net.norm_eps)
    if not (np.isfinite(var) and var >= 0):
        return np.full(edges.size - 1, np.nan)
    t = np.linspace(-12.0, 12.0, 40_001)
    weights = np.exp(-0.5 * t * t)
    values = math.sqrt(var) * t
    if of == "a":
        values = net.activation_fn(values)
    found, _ = np.histogram(values, bins=edges, weights=weights / weights.sum())
    return found


def histograms(res, of: str = "z", layers: "Sequence[int] | None" = None, axes=None,
               log: bool = False) -> np.ndarray:
    """Per-layer densities of z, a or delta (small multiples), each with the infinite-width
    law drawn over it: N(0, q^l) for z, phi of it for a (saturated tanh units pile up near
    +-1, dead ReLU units at 0), N(0, g^l) for delta.

    Parameters
    ----------
    res : Result
        A result of ``simulate(..., histograms=True)``.
    of : "z", "a" or "delta"
        The quantity (delta needs gradients).
    layers : sequence of int, optional
        Layers to draw, 1-based (default: all up to 6, else 6 from first to last).
    axes : sequence of matplotlib Axes, optional
        One per layer; default a new pyplot figure, one panel per layer.
    log : bool
        Log density axis (shows the tails).

    Returns
    -------
    numpy.ndarray of Axes, one per layer.
    """
    depth = res.network.depth
    if layers is None:
        layers = sorted({int(round(x)) for x in np.linspace(1, depth, min(depth, 6))})
    layers = list(layers)
    found = [res.histogram(layer, of) for layer in layers]  # checks res, of and the layers
    _matplotlib()
    if axes is None:
        import matplotlib.pyplot as plt

        cols = min(3, len(layers))
        rows = -(-len(layers) // cols)
        _, grid = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False,
                               layout="constrained")
        axes = grid.ravel()[:len(layers)]
        for extra in grid.ravel()[len(layers):]:
            extra.set_visible(False)
    axes = np.ravel(np.asarray(axes, dtype=object))
    if len(axes) != len(layers):
        raise ValueError(f"give one Axes per layer ({len(layers)}), got {len(axes)}")
    for axis, layer, h in zip(axes, layers, found):
        density = h.density()
        width = np.diff(h.edges)
        theory = theory_bins(res, layer, of, h.edges) / width
        filled = np.flatnonzero((h.counts > 0) | (theory * width > 1e-5))
        low, high = (h.edges[filled[0]], h.edges[filled[-1] + 1]) if filled.size else (-1, 1)
        axis.stairs(density, h.edges, color="C0", fill=True, alpha=0.35, label="Monte Carlo")
        axis.stairs(theory, h.edges, color="k", lw=1.0, ls="--", label=r"$n \to \infty$")
        axis.set_xlim(low, high)
        if log:
            axis.set_yscale("log")
            log_ticks(axis.yaxis)
        outside = h.below + h.above
        note = f", {outside} outside" if outside else ""
        axis.set_title(f"layer {layer}{note}", fontsize="medium")
        axis.set_xlabel(HISTOGRAM_LABELS[of])
        axis.set_ylabel("density")
    axes[0].legend(fontsize="small")
    return axes


def save_histograms(res, path: "str | os.PathLike", of: str = "z",
                    layers: "Sequence[int] | None" = None, log: bool = False) -> None:
    """Draw :func:`histograms` on a figure of its own and write it to ``path`` (PNG, SVG...),
    atomically; ``path`` is checked before anything is drawn.

    Parameters
    ----------
    res : Result
        A result of ``simulate(..., histograms=True)``.
    path : str or os.PathLike
        The image file.
    of : {"z", "a", "delta"}
        The quantity.
    layers : sequence of int or None
        Layers, 1-based (default: all up to 6, else 6 from first to last).
    log : bool
        Log density axis.
    """
    check_image_output(path)
    from matplotlib.figure import Figure

    depth = res.network.depth
    count = len(layers) if layers is not None else min(depth, 6)
    cols = min(3, count)
    rows = -(-count // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    grid = fig.subplots(rows, cols, squeeze=False).ravel()
    for extra in grid[count:]:
        extra.set_visible(False)
    histograms(res, of, layers, axes=grid[:count], log=log)
    fig.suptitle(res.network.describe(), fontsize="medium")
    write_figure(fig, path, dpi=110)


# ------------------------------------------------------------------ sweeps

# observable -> (axis / colour-bar label, whether it is a depth scale with an SE)
SWEEP_VALUES = {
    "log_q_ratio": (r"$\ln(q^L / q^1)$: signal growth through the network", False),
    "log_g_ratio": (r"$\ln(g^1 / g^L)$: gradient growth towards the input", False),
    "c": (r"$c^L$: correlation of two inputs at layer $L$", False),
    "xi_c": (r"measured $\xi_c$ (layers)", True),
    "xi_q": (r"measured $\xi_q$ (layers)", True),
}
_AXIS_NAMES = {"init": r"$\sigma_w^2$", "bias_std": r"$\sigma_b^2$", "width": "width $n$",
               "depth": "depth $L$", "correlation": "input correlation $c^0$", "gain": "gain"}


def _axis(sweep, key: str) -> tuple[list, np.ndarray, str]:
    """(grid values, their plotting positions, label); bias_std is drawn as sigma_b^2."""
    values = sweep.grid[key]
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    if not numeric:
        return values, np.arange(len(values), dtype=float), _AXIS_NAMES.get(key, key)
    pos = np.asarray(values, dtype=float)
    return values, pos ** 2 if key == "bias_std" else pos, _AXIS_NAMES.get(key, key)


def _edges(pos: np.ndarray) -> np.ndarray:
    """Cell edges around sorted centres (midpoints; half a step beyond the ends), never below
    0 where no centre is: a variance, width or depth axis must not run negative."""
    if len(pos) == 1:
        edges = np.array([pos[0] - 0.5, pos[0] + 0.5])
    else:
        mid = 0.5 * (pos[1:] + pos[:-1])
        edges = np.concatenate([[2 * pos[0] - mid[0]], mid, [2 * pos[-1] - mid[-1]]])
    return np.maximum(edges, 0.0) if pos.min() >= 0 else edges


def _selection(sweep, axes_keys: Sequence[str], where) -> np.ndarray:
    """Indices of the configurations that match ``where`` on the keys not drawn."""
    where = dict(where or {})
    unknown = [k for k in where if k not in sweep.grid or k in axes_keys]
    if unknown:
        raise ValueError(f"where: {unknown[0]!r} is not a grid key besides the axes")
    keep = []
    for i, point in enumerate(sweep.configs):
        if all(point[k] == v for k, v in where.items()):
            keep.append(i)
    if not keep:
        raise ValueError(f"no configuration matches where={where}")
    return np.asarray(keep)


def _fixed(sweep, key: str, index: np.ndarray):
    """The single value of ``key`` over the configurations ``index`` (grid or fixed), else
    None."""
    if key in sweep.grid:
        values = {sweep.configs[i][key] for i in index}
        return values.pop() if len(values) == 1 else None
    return sweep.fixed.get(key)


def _critical_line(sweep, index: np.ndarray) -> "tuple[np.ndarray, np.ndarray] | None":
    """(sigma_b^2, critical sigma_w^2) over the drawn sigma_b^2 range, where one activation."""
    from . import theory

    activation = _fixed(sweep, "activation", index)
    if activation is None:
        return None
    # at the grid's own sigma_b^2 (each costs a bisection of quadratures, ~0.4 s)
    line = np.unique(np.asarray(sweep.grid["bias_std"], dtype=float) ** 2)
    try:
        return line, np.array([theory.critical_sigma_w2(activation, s) for s in line])
    except ValueError:  # no order-to-chaos transition for this activation
        return None


def plot_sweep(sweep, x: str, y: "str | None" = None, value: str = "xi_c", layer: int = -1,
               where=None, ax=None, theory_points: int = 48):
    """A sweep's observable over one or two grid keys.

    Two keys (``x``, ``y``): a heatmap of ``value`` with a labelled colour bar (a log colour
    scale where positive values span more than two decades; a diverging one centred at 0
    for the log ratios). When the axes are ``init`` (sigma_w^2) and ``bias_std`` (drawn as
    sigma_b^2 = bias_std^2), the theory's order-to-chaos line sigma_w^2 = critical(sigma_b^2)
    is drawn over it. One key: ``value`` against ``x``, one line per combination of the
    other grid keys, with ± SE bars and the theory (``theory.depth_scales``) for xi; on a
    log axis where values span decades. Other grid keys with several values must be pinned
    by ``where`` for a heatmap. ``value`` and ``layer``: see :meth:`Sweep.observable`.
    ``theory_points``: sigma_w^2 values of the theory's xi curve (about 0.25 s each).
    Returns the Axes.

    Parameters
    ----------
    sweep : Sweep
        The sweep.
    x : str
        Grid key along the horizontal axis.
    y : str or None
        Grid key along the vertical axis (a heatmap), or None (lines).
    value : str
        The observable (:meth:`Sweep.observable`): "xi_c", "xi_q", "c", "log_q_ratio", ...
    layer : int
        The layer of layer-wise observables (-1: the last).
    where : mapping or None
        Values of the other grid keys to pin.
    ax : matplotlib.axes.Axes or None
        Draw there (default: a new pyplot figure).
    theory_points : int
        sigma_w^2 values of the theory's xi curve.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        A key that is not in the grid, ``x`` equal to ``y``, or another grid key with several
        values left unpinned in a heatmap.
    """
    if x not in sweep.grid or (y is not None and y not in sweep.grid):
        missing = x if x not in sweep.grid else y
        raise ValueError(f"{missing!r} is not a grid key; the grid has {', '.join(sweep.grid)}")
    if y == x:
        raise ValueError("x and y must be different grid keys")
    label, is_scale = SWEEP_VALUES.get(value, (value, False))
    index = _selection(sweep, [x] + ([y] if y else []), where)
    values = sweep.observable(value, layer)
    _matplotlib()
    from matplotlib import colors

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6.0, 4.6), layout="constrained")
    xs, xpos, xlabel = _axis(sweep, x)
    if y is None:
        _sweep_lines(sweep, ax, x, xs, xpos, index, value, values, is_scale, theory_points)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(label)
        return ax
    others = [k for k in sweep.grid if k not in (x, y) and _fixed(sweep, k, index) is None]
    if others:
        raise ValueError(f"grid key {others[0]!r} has several values: pin it with "
                         f"where={{{others[0]!r}: ...}}")
    ys, ypos, ylabel = _axis(sweep, y)
    grid = np.full((len(ys), len(xs)), np.nan)
    for i in index:
        point = sweep.configs[i]
        grid[ys.index(point[y]), xs.index(point[x])] = values[i]
    xo, yo = np.argsort(xpos), np.argsort(ypos)
    grid = grid[yo][:, xo]
    finite = grid[np.isfinite(grid)]
    norm, cmap = None, "viridis"
    if value.startswith("log_") and finite.size and finite.min() < 0 < finite.max():
        norm, cmap = colors.TwoSlopeNorm(0.0, finite.min(), finite.max()), "RdBu_r"
    elif finite.size and finite.min() > 0 and finite.max() > 100 * finite.min():
        norm = colors.LogNorm(finite.min(), finite.max())
    mesh = ax.pcolormesh(_edges(xpos[xo]), _edges(ypos[yo]), np.ma.masked_invalid(grid),
                         norm=norm, cmap=cmap, shading="flat")
    ax.figure.colorbar(mesh, ax=ax, label=label)
    if {x, y} == {"init", "bias_std"}:
        line = _critical_line(sweep, index)
        if line is not None:
            sb2, sw2 = line
            px, py = (sw2, sb2) if x == "init" else (sb2, sw2)
            ax.plot(px, py, "w-", lw=2.2)
            ax.plot(px, py, "k--", lw=1.2, label="order-to-chaos line (theory, $\\chi_1 = 1$)")
            ax.legend(loc="upper left", fontsize="small")
    for key, pos, values_, setter in ((x, xpos, xs, ax.set_xticks), (y, ypos, ys, ax.set_yticks)):
        if not all(isinstance(v, (int, float)) for v in values_):
            setter(pos, [str(v) for v in values_])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return ax


def _sweep_lines(sweep, ax, x, xs, xpos, index, value, values, is_scale,
                 theory_points: int) -> None:
    """plot_sweep's one-key case: a line per combination of the other grid keys."""
    from . import theory

    others = [k for k in sweep.grid if k != x]
    groups: dict = {}
    for i in index:
        groups.setdefault(tuple(sweep.configs[i][k] for k in others), []).append(i)
    se = sweep.observable(f"{value}_se") if is_scale else None
    for n, (key, members) in enumerate(groups.items()):
        members = sorted(members, key=lambda i: xpos[xs.index(sweep.configs[i][x])])
        px = np.array([xpos[xs.index(sweep.configs[i][x])] for i in members])
        color = f"C{n % 10}"
        name = ", ".join(f"{k}={v}" for k, v in zip(others, key)) or "measured"
        if se is not None:
            ax.errorbar(px, values[members], yerr=se[members], fmt="o", ms=4, color=color,
                        capsize=2, label=f"{name} ± SE")
        else:
            ax.plot(px, values[members], "o-", ms=4, color=color, label=name)
        params = {**sweep.fixed, **dict(zip(others, key))}
        if not (is_scale and x == "init" and isinstance(params.get("activation"), str)):
            continue
        # the asymptotic theory on a fine sigma_w^2 grid: it diverges at the critical line
        act, sb2 = params["activation"], float(params.get("bias_std", 0.0)) ** 2
        try:
            crit = theory.critical_sigma_w2(act, sb2)
        except ValueError:  # no order-to-chaos transition
            crit = math.nan
        # denser near the critical line, where xi diverges
        near = np.linspace(-0.15, 0.15, theory_points // 2) * (px.max() - px.min())
        fine = np.linspace(px.min(), px.max(), theory_points - len(near))
        if math.isfinite(crit):
            fine = np.unique(np.concatenate([fine, crit + near]))
        fine = fine[(fine >= px.min()) & (fine <= px.max())]
        curve = []
        for sw2 in fine:
            try:
                curve.append(theory.depth_scales(act, sw2, sb2)[1 if value == "xi_c" else 0])
            except ValueError:
                curve.append(np.nan)
        ax.plot(fine, curve, "-", color=color, lw=1.2, label="mean-field theory")
        if math.isfinite(crit):
            ax.axvline(crit, color="0.5", ls=":", lw=1,
                       label=f"critical $\\sigma_w^2$ = {crit:.3f}")
    finite = values[index][np.isfinite(values[index])]
    if finite.size and finite.min() > 0 and (is_scale or finite.max() > 100 * finite.min()):
        ax.set_yscale("log")
        log_ticks(ax.yaxis)
    if not all(isinstance(v, (int, float)) for v in xs):
        ax.set_xticks(xpos, [str(v) for v in xs])
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")


def save_sweep(sweep, path: "str | os.PathLike", x: str, y: "str | None" = None,
               value: str = "xi_c", layer: int = -1, where=None,
               title: "str | None" = None, theory_points: int = 48) -> None:
    """Draw :func:`plot_sweep` on a figure of its own and write it to ``path`` atomically
    (format from the extension; checked before drawing; no display needed).

    Parameters
    ----------
    sweep : Sweep
        The sweep.
    path : str or os.PathLike
        The image file.
    x, y, value, layer, where, theory_points
        As for :func:`plot_sweep`.
    title : str or None
        Figure title.
    """
    check_image_output(path)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    plot_sweep(sweep, x, y, value=value, layer=layer, where=where, ax=fig.subplots(),
               theory_points=theory_points)
    if title:
        fig.suptitle(title, fontsize="medium")
    write_figure(fig, path, dpi=110)
