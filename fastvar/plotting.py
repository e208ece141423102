"""Pictures of Results: per-layer q and g, Monte Carlo +- SE beside the mean-field theory.

matplotlib is an optional extra (``pip install 'fastvar[plot]'``), imported only here and
only when a picture is asked for.
"""
from __future__ import annotations

import io
import os
from typing import Sequence

import numpy as np

from ._files import check_output, write_file

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
    """The matplotlib format named by ``path``'s extension ("png", "svg", ...), else ValueError."""
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
    """Before drawing: ``path`` must be writable and name an image format; returns the format."""
    check_output(path)
    return image_format(path)


def write_figure(fig, path: "str | os.PathLike", dpi: int) -> None:
    """Render ``fig`` in memory and write it to ``path`` atomically (see :mod:`fastvar._files`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=image_format(path), dpi=dpi)
    write_file(path, buffer.getvalue())


def short_label(res) -> str:
    """A legend label for one Result: activation, init, gain, bias, width."""
    net = res.network
    init = net.init if isinstance(net.init, str) else f"$\\sigma_w^2$={net.init:g}"
    gain = f" gain {net.gain:.3g}" if net.gain != 1.0 else ""
    bias = f", $\\sigma_b$={net.bias_std:g}" if net.bias_std else ""
    widths = set(net.widths[1:])
    width = f", n={widths.pop()}" if len(widths) == 1 else ""
    return f"{net.activation}, {init}{gain}{bias}{width}"


def _as_list(results) -> list:
    from .results import Result

    items = [results] if isinstance(results, Result) else list(results)
    if not items or not all(isinstance(r, Result) for r in items):
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
        axes = np.ravel(np.asarray(ax, dtype=object))
        if len(axes) == 1:
            axes = np.repeat(axes, len(quantities))
        elif len(axes) != len(quantities):
            raise ValueError(f"give one Axes, or one per quantity ({len(quantities)}), "
                             f"got {len(axes)}")
    shared = len(set(map(id, axes))) < len(axes)
    for kind, axis in zip(quantities, axes):
        mean_col, se_col, theory_col, ylabel = QUANTITIES[kind]
        marker, line = _STYLE[kind] if shared else ("o", "-")
        for i, (res, label) in enumerate(zip(items, labels)):
            if not _has(res, kind):
                continue
            color = f"C{i % 10}"
            layer, mean, se = res["layer"], res[mean_col], res[se_col]
            axis.fill_between(layer, mean - se, mean + se, color=color, alpha=0.25, lw=0)
            axis.plot(layer, mean, marker, ms=3.5, color=color,
                      label=f"{kind}: {label}" if shared else label)
            axis.plot(layer, res[theory_col], line, lw=1.2, color=color)
        axis.set_yscale("linear" if kind == "c" else "log")
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
    """Whole layers on x; plain numbers on a log y axis (not 2.02x10^0 on a narrow range)."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    if axis.get_yscale() == "log":
        plain = FuncFormatter(lambda value, _: f"{value:.4g}")
        axis.yaxis.set_major_formatter(plain)
        low, high = axis.get_ylim()
        if 0 < low and high < 10 * low:  # under a decade: label the minor ticks too
            axis.yaxis.set_minor_formatter(plain)


def save(results, path: "str | os.PathLike", labels: "Sequence[str] | None" = None,
         quantities: "Sequence[str] | None" = None, title: "str | None" = None) -> None:
    """Draw :func:`plot` on a figure of its own and write it to ``path`` (PNG, SVG, PDF...).

    Needs no display: the figure is not made through pyplot. ``path`` and its format are
    checked before anything is drawn; the file is written atomically.
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
