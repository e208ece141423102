"""Per-layer columns of a Result: statistics from the stats array, their standard errors,
the mean-field theory beside them, and what makes some of them incomplete.

Columns are derived from the merged stats array (L, ROWS, STATS_SIZE) of
:mod:`fastvar.kernels.accumulators`. Units of one trial are not independent (they share
||a^{l-1}||), so std / sqrt(units x trials) would understate the error, often by a factor
of several at depth: every standard error here comes from the variation between
independent networks (per-network means of x and x^2), by the delta method where needed.
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Callable, Iterator, Mapping

import numpy as np

from ..finite_width import COLUMNS as FINITE_WIDTH_COLUMNS, finite_width_columns
from ..kernels import columns as kcolumns
from ..kernels.accumulators import DELTA, LINK, NET, PAIR, ROWS, STATS_SIZE, A, Z
from ..kernels.columns import (BACKWARD, BOOLS, CANDIDATES, COUNTS, DROPPED, FLAGS, FLOATS,
                               FORWARD, G_GATE, LOST, Q_GATE, TINY, ZERO)
from ..network import Network
from ..theory import correlation_fixed_point, correlation_map, mean_field_maps, variance_map

if TYPE_CHECKING:
    from .result import Result

COLUMNS = ("layer", "width", "z_mean", "z_var", "z_var_se", "z_skew", "z_kurt",
           "a_mean", "a_var", "a_var_se", "q_mean", "q_mean_se", "q_var",
           "grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var",
           "m_mean", "m_mean_se", "m_var", "c_mean", "c_mean_se", "c_undefined",
           "dead_frac", "dead_frac_se",
           "nonfinite_z", "nonfinite_a", "nonfinite_delta", "overflow", "underflow", "complete",
           "q_heavy_tails", "g_heavy_tails")
PAIR_COLUMNS = ("c_mean", "c_mean_se")
# what squares or fourth powers of underflowing values make meaningless, forward and backward
UNDERFLOW_COLUMNS = (("z_var_se", "z_skew", "z_kurt", "a_var_se", "q_mean_se", "q_var",
                      "m_mean_se", "m_var", "dead_frac", "dead_frac_se"),
                     ("grad_var_se", "g_mean_se", "g_var"))
GRADIENT_COLUMNS = ("grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var")
# statistics of each quantity that use only the networks (or trials, or values) whose values
# were all finite: where fewer than half of the networks are complete for that quantity
# (kernels.columns.SURVIVORS_NEEDED), they describe a selected few (often the only ones that
# died early), not the networks drawn, and show NaN
SURVIVOR_COLUMNS = {"z": ("z_mean", "z_var", "z_var_se", "z_skew", "z_kurt",
                          "q_mean", "q_mean_se", "q_var"),
                    "a": ("a_mean", "a_var", "a_var_se", "m_mean", "m_mean_se", "m_var"),
                    "dead_frac": ("dead_frac", "dead_frac_se"),
                    "delta": GRADIENT_COLUMNS,
                    "c": PAIR_COLUMNS}
# after COLUMNS, computed on first use; the finite-width ones from fastvar.finite_width
THEORY_COLUMNS = ("q_theory", "g_theory", "c_theory") + FINITE_WIDTH_COLUMNS
# networks expected in the tail that carries half the variance, below which SEs are flagged
TAIL_NETWORKS = 2.0
# heavy-tail flag -> (what is heavy-tailed, the SE columns it makes unreliable)
# SEs that show NaN where a quantity is exactly 0 in every network (network_counts' zero)
ZERO_COLUMNS = ("z_var_se", "a_var_se", "q_mean_se", "m_mean_se", "dead_frac_se")
HEAVY_TAILS = {"q_heavy_tails": ("q (or m)", ("q_mean_se", "z_var_se", "m_mean_se", "a_var_se")),
               "g_heavy_tails": ("g", ("g_mean_se", "grad_var_se"))}
# a variance's SE and the SE of its E[x^2], as quality_warnings checks them for rounding
ROUNDED = (("z_var_se", "q_mean_se"), ("a_var_se", "m_mean_se"), ("grad_var_se", "g_mean_se"))
# the networks kept (network_counts), in the order of the kernel's rows
KEPT = ("z", "a", "delta", "c", "dead_frac")


def _blank_table() -> np.ndarray:
    """Which float columns show NaN where each of the kernel's flags is set (the last two:
    always without gradients, always without pairs)."""
    table = np.zeros((len(FLOATS), FLAGS + 2), dtype=bool)
    rules = [(ZERO_COLUMNS, ZERO), (UNDERFLOW_COLUMNS[0], FORWARD),
             (UNDERFLOW_COLUMNS[1], BACKWARD), (GRADIENT_COLUMNS, FLAGS),
             (PAIR_COLUMNS, FLAGS + 1)]
    rules += [(SURVIVOR_COLUMNS[q], LOST + KEPT.index(q)) for q in SURVIVOR_COLUMNS]
    for names, flag in rules:
        table[[FLOATS.index(name) for name in names], flag] = True
    return table


_BLANK = _blank_table()
# where each column after layer and width comes from, in COLUMNS' order: (name, 0 for
# layer_columns' floats, 1 for its bools or 2 for its counts, row)
_LAYOUT = tuple((name, *next((source, names.index(name))
                             for source, names in enumerate((FLOATS, BOOLS, COUNTS))
                             if name in names))
                for name in COLUMNS[2:])


class IncompleteStatisticsWarning(RuntimeWarning):
    """Some statistics of a Result were computed from fewer values than requested (NaN or
    infinite values left out) or overflowed, the ``complete`` column says which layers; or
    some standard errors are unreliable, as ``q_heavy_tails`` and ``g_heavy_tails`` say."""


def mean_var_se(n: np.ndarray, mean: np.ndarray, m2: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, variance (ddof=1) and SE of the mean of (count, mean, M2) states.

    Parameters
    ----------
    n, mean, m2 : numpy.ndarray
        The states' counts, means and sums of squared deviations, one shape (e.g. (L,)).

    Returns
    -------
    mean, var, se : numpy.ndarray
        That shape: the mean (NaN without values), the variance and the SE (NaN below two).
    """
    shape = np.shape(n)
    flat = (np.ascontiguousarray(x, dtype=np.float64).reshape(-1) for x in (n, mean, m2))
    return tuple(x.reshape(shape) for x in kcolumns.mean_var_se(*flat))


def heavy_tails(row: np.ndarray) -> np.ndarray:
    """Layers whose per-network mean squares x (q, m or g) are too heavy-tailed for their
    number N of networks to give a reliable standard error; rows (L, S), returns (L,) bool.

    The SE of a mean is sqrt(s^2 / N), s^2 the sample variance of x over networks. No
    fourth moment of x is accumulated, so its tails are judged by the log-normal of the
    same mean and relative variance v = s^2 / mean^2: x^l is a product over layers of
    per-layer gains, ln x^l a sum of them. Under that law half of E[x^2] comes from values
    above exp(mu + 2 sigma^2), sigma^2 = ln(1 + v), a fraction Phi(-2 sigma) of networks.
    Their number in a sample is about Poisson with mean N Phi(-2 sigma); below TAIL_NETWORKS
    (2) the sample misses that half of the variance altogether in more than e^-2 = 14% of
    runs, and s^2 varies by about +-1/(2 sqrt(2)) = 35% from run to run (the SE by 18%):
    such layers are flagged. That is ln(1 + v) > z^2 / 4 with z = Phi^-1(1 - 2 / N): v above
    6.9, 14 and 67 for N = 1000, 4000 and 10^5; the networks needed grow like (1 + v)^2.
    Layers with v <= 1 are not flagged however few the networks: only a positive quantity
    whose SD exceeds its mean must be skewed (skewness >= sqrt(v) - 1/sqrt(v)). The
    log-normal's kurtosis, set by far rarer values, would also flag layers whose +-2 SE
    still cover the truth 95% of the time (width 16, linear, depth 20, N = 4000).

    Parameters
    ----------
    row : numpy.ndarray
        One quantity's stats rows, shape (L, S): its pair state over networks (or several
        quantities' at once, shape (..., L, S)).

    Returns
    -------
    numpy.ndarray
        Shape (L,) (or (..., L)), bool: True where the SE is unreliable.
    """
    rows = np.ascontiguousarray(row, dtype=np.float64)
    if rows.ndim < 2 or rows.shape[-1] != STATS_SIZE:  # the kernel reads fixed fields
        raise ValueError(f"row must be stats rows of shape (..., L, {STATS_SIZE}), got shape "
                         f"{rows.shape}")
    v, flags = kcolumns.tail_variance(rows.reshape(-1, rows.shape[-1]))
    return _confirm_tails(v, flags, rows[..., PAIR]).reshape(rows.shape[:-1])


def _confirm_tails(v: np.ndarray, flags: np.ndarray, n: np.ndarray) -> np.ndarray:
    """:func:`heavy_tails` from the relative variances v (contiguous) and the candidates
    (``flags``, n > 1 and v > 1, set in place), n networks, all of one size."""
    candidates = np.flatnonzero(flags)
    if candidates.size:
        sigma2 = np.log1p(v)  # NumPy's log1p, not Numba's (which may round differently)
        for i in candidates.tolist():
            s = sigma2.flat[i]
            # Phi(-2 sigma); NaN where undefined
            beyond = 0.5 * math.erfc(math.sqrt(2.0 * s)) if s >= 0 else math.nan
            flags.flat[i] = n.flat[i] * beyond < TAIL_NETWORKS
    return flags


def ratio_of_means(row: np.ndarray, shift: "float | np.ndarray" = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """A ratio of two means over networks, and its standard error.

    Parameters
    ----------
    row : numpy.ndarray
        Pair states (x, y) over networks, shape (L, S).
    shift : float or numpy.ndarray
        Subtracted from both means (scalar, or shape (L,)).

    Returns
    -------
    ratio : numpy.ndarray
        (E[y] - shift) / (E[x] - shift), shape (L,); NaN where no networks.
    se : numpy.ndarray
        Its SE by the delta method with the measured covariance of x and y, shape (L,).
    """
    n, mx, my, cxx, cxy, cyy = (row[:, PAIR + i] for i in range(6))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x, y = mx - shift, my - shift
        r = y / x
        var = (cyy - 2 * r * cxy + r * r * cxx) / ((n - 1.0) * n) / (x * x)
        return np.where(n > 0, r, np.nan), np.sqrt(np.maximum(var, 0.0))


def _merged(stats: np.ndarray) -> np.ndarray:
    """``stats`` as the kernels read them, C-contiguous float64 of shape (L, >= ROWS,
    STATS_SIZE); a ValueError for any other shape, as the kernels index fixed rows and
    fields without bounds checks."""
    merged = np.ascontiguousarray(stats, dtype=np.float64)
    if merged.ndim != 3 or merged.shape[1] < ROWS or merged.shape[2] != STATS_SIZE:
        raise ValueError(f"stats must be merged stats of shape (L, {ROWS} or more, "
                         f"{STATS_SIZE}), got shape {merged.shape}")
    return merged


def network_counts(stats: np.ndarray, networks: "int | None", gradients: bool,
                   zero_gradients: bool = False, zero_inputs: bool = False) -> dict:
    """Per layer, how many networks each quantity's statistics use, and where too few.

    A network enters the between-network statistics of z, a or delta at a layer only if
    all its values there are finite (:func:`fastvar.kernels.accumulators.add_networks`),
    its dead fraction only if its activations' lengths are finite (their squares may
    overflow where the values do not), and a pair's cosine only if it is finite. Returns a
    dict: ``networks`` (the number drawn, or None if unknown); ``kept`` (quantity -> (L,)
    networks used, for "z", "a", "delta", "dead_frac" and "c"); ``dropped`` (quantity -> (L,)
    bool: non-finite values were left out); ``lost`` (quantity -> (L,) bool: fewer than
    SURVIVORS_NEEDED (half) of the networks are used, all False if ``networks`` is None,
    and for "delta" without gradients); ``forward`` and ``backward``: the layers whose values
    underflow, before layers with dropped networks are taken out; ``zero``: the layers
    where z or a is exactly 0 in every network; ``flags``: these bool rows stacked, shape
    (FLAGS, L) (:func:`fastvar.kernels.columns.network_flags`), for :func:`compute_columns`.

    Underflow: a mean square below TINY leaves the SEs (squares of it) and the kurtosis
    (fourth powers) at 0 or subnormal. Values that underflowed to exactly 0 pass that on:
    ``forward`` runs from a layer of z or a below TINY on while z or a stays exactly 0
    after it; ``backward`` holds the layers where the gradients are below TINY, or exactly
    0 in every network below the output (phi' underflowed: tanh'(1e50) = 1 - 1.0 = 0, not
    e^-1e50, or zeros above), unless ``zero_gradients`` says they can truly be (a norm over
    1 or 2 units is constant, so its Jacobian is 0).

    Exactly 0 in every network (``zero``, not where ``forward`` or where networks were
    dropped: survivors' zeros after an overflow are the survivor rule's): every network
    drawn died there (dead ReLUs: a^l = 0, then z^{l+1} = 0 without biases), yet the true
    mean of q or m is not 0 (E q = 2 for ReLU with He weights at any width): the networks
    that carry it are too rare for their number. The sample's mean is 0 and its variance
    0, so its SEs (0) would be wrong: they show NaN and the layer is flagged as
    heavy-tailed (no network at all in the tail). Nothing is flagged where
    ``zero_inputs`` says the values are truly 0 (an all-zero input without biases).

    Parameters
    ----------
    stats : numpy.ndarray
        Merged stats, shape (L, ROWS, S).
    networks : int or None
        Networks drawn (None: unknown).
    gradients : bool
        Whether the run has gradients.
    zero_gradients : bool
        Gradients may be exactly 0 (a norm over 1 or 2 units): not an underflow.
    zero_inputs : bool
        Every value may be exactly 0 truly (an all-zero input without biases).

    Returns
    -------
    dict
        The keys above.
    """
    total = np.nan if networks is None else float(networks)
    kept, flags = kcolumns.network_flags(_merged(stats), bool(gradients),
                                         bool(zero_gradients), bool(zero_inputs), total)
    return {"networks": networks, "kept": dict(zip(KEPT, kept)),
            "dropped": dict(zip(KEPT[:4], flags[DROPPED:DROPPED + 4])),
            "lost": dict(zip(KEPT, flags[LOST:LOST + len(KEPT)])),
            "forward": flags[FORWARD], "backward": flags[BACKWARD], "zero": flags[ZERO],
            "flags": flags}


def compute_columns(stats: np.ndarray, widths, gradients: bool, pairs: bool = False,
                    zero_gradients: bool = False, networks: "int | None" = None,
                    zero_inputs: bool = False, counts: "dict | None" = None
                    ) -> dict[str, np.ndarray]:
    """All result columns from a merged stats array of shape (L, ROWS, STATS_SIZE).

    Besides the statistics, per layer: ``nonfinite_z/_a/_delta`` count the NaN or infinite
    unit values left out; ``overflow`` is True where the accumulated sums themselves
    overflowed (values beyond about 1e154, or 1e77 for the fourth moments); ``complete``
    is True where neither happened and nothing underflowed (``underflow``, see
    :func:`network_counts`), i.e. every statistic of the layer uses every value, and z and
    a are not exactly 0 in every network (``zero`` of :func:`network_counts`: the SEs
    there show NaN).
    ``q_heavy_tails`` and ``g_heavy_tails`` mark layers whose SEs are unreliable
    (:func:`heavy_tails`, or every network exactly 0 there, where a dead network made it
    so; False where the SEs underflowed, which says so already).

    ``networks`` (the number of networks drawn) enables the survivor rule: where non-finite
    values (or infinite lengths) were left out of a quantity (z, a, delta, the dead fraction
    or the cosine) and fewer than half of the networks are complete for it
    (:func:`network_counts`), its columns (SURVIVOR_COLUMNS) are NaN: the few networks
    left are no sample of those drawn (at sigma_w^2 = 1e100 they are the ones that died
    before overflowing). Elsewhere the
    columns are unchanged. ``underflow`` is False where networks were dropped for
    non-finite values: those layers overflowed, whatever the survivors' values.

    Parameters
    ----------
    stats : numpy.ndarray
        Merged stats, shape (L, ROWS, STATS_SIZE).
    widths : sequence of int
        n_0, ..., n_L.
    gradients : bool
        Whether the run has gradients (else the gradient columns are NaN).
    pairs : bool
        Whether the run fed input pairs (else the cosine columns are NaN).
    zero_gradients : bool
        Gradients may be exactly 0 (a norm over 1 or 2 units).
    networks : int or None
        Networks drawn; enables the survivor rule.
    zero_inputs : bool
        Every value may be exactly 0 truly (an all-zero input without biases).
    counts : dict or None
        :func:`network_counts` of the same stats and arguments, if the caller has it
        (computed here otherwise).

    Returns
    -------
    dict of str to numpy.ndarray
        :data:`COLUMNS` by name, each of shape (L,).
    """
    stats = _merged(stats)
    if counts is None:
        counts = network_counts(stats, networks, gradients, zero_gradients, zero_inputs)
    floats, bools, v = kcolumns.layer_columns(stats, bool(gradients), bool(pairs),
                                              counts["flags"], _BLANK)
    heavy = bools[CANDIDATES:]
    if np.count_nonzero(heavy):  # (3, L), z, a, delta
        _confirm_tails(v, heavy, stats[:, (Z, A, DELTA), PAIR].T)
        bools[3] |= (heavy[0] | heavy[1]) & bools[Q_GATE]
        bools[4] |= heavy[2] & bools[G_GATE]
    sources = (floats, bools, floats[len(FLOATS):].astype(np.int64))
    return {"layer": np.arange(1, stats.shape[0] + 1), "width": np.asarray(widths[1:]),
            **{name: sources[source][row] for name, source, row in _LAYOUT}}


def layer_ranges(mask: np.ndarray) -> str:
    """The layers where ``mask`` is True, in words.

    Parameters
    ----------
    mask : array_like of bool
        Shape (L,), layer 1 first.

    Returns
    -------
    str
        'layer 3', 'layers 3-10' or 'layers 3-5, 8'.
    """
    runs, start = [], None
    for i, flag in enumerate(list(mask) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append(f"{start + 1}" if i - 1 == start else f"{start + 1}-{i}")
            start = None
    single = len(runs) == 1 and "-" not in runs[0]
    return ("layer " if single else "layers ") + ", ".join(runs)


def quality_warnings(cols: Mapping[str, np.ndarray], counts: "dict | None" = None) -> list[str]:
    """Which statistics are incomplete or overflowed and which SEs are unreliable.

    Parameters
    ----------
    cols : mapping of str to numpy.ndarray
        A Result's columns (:func:`compute_columns`).
    counts : dict or None
        :func:`network_counts` of the same stats: then the lines say how many networks were
        kept and which layers lost too many.

    Returns
    -------
    list of str
        One sentence per problem (heavy tails included); empty if none.
    """
    nonfinite = {q: cols[f"nonfinite_{q}"] for q in ("z", "a", "delta")}
    # which flags of network_counts are set anywhere: one NumPy call for them all, as a
    # small call's warnings cost a few NumPy calls, not dozens (none when no flag is set)
    hits = None
    if counts is not None:
        flags = counts["flags"]
        hits = flags.any(axis=1).tolist() if np.count_nonzero(flags) else [False] * len(flags)
    lines = []
    # np.count_nonzero, not .any(): a fifth of the cost on the short arrays of small calls
    quantities = [q for q, values in nonfinite.items() if np.count_nonzero(values)]
    parts = [f"{q} at {layer_ranges(nonfinite[q] > 0)} ({int(nonfinite[q].sum())} values)"
             for q in quantities]
    if parts:
        which = "the networks"
        if counts is not None and counts["networks"] is not None:
            # the fewest networks any statistic named here rests on
            fewest = min(int(counts["kept"][q][nonfinite[q] > 0].min()) for q in quantities)
            which = f"the {fewest} of {counts['networks']} networks"
        line = (f"NaN or infinite values (overflow) were left out: {', '.join(parts)}; "
                f"q, g and the SEs there use only {which} whose values were all finite")
        lines.append(line)
    if counts is not None:
        lost = [(q, counts["lost"][q]) for q in SURVIVOR_COLUMNS if hits[LOST + KEPT.index(q)]]
        if lost:
            fewest = min(int(counts["kept"][q][mask].min()) for q, mask in lost)
            where = ", ".join(f"{q} at {layer_ranges(mask)}" for q, mask in lost)
            lines.append(f"fewer than half of the networks (as few as {fewest} of "
                         f"{counts['networks']}) had finite values or lengths for {where}: "
                         "the statistics of those values there show nan, as the networks "
                         "left are no sample of those drawn (at overflow, often only those "
                         "that died early); lower sigma_w^2 or use fewer layers")
    if np.count_nonzero(cols["overflow"]):
        lines.append(f"{layer_ranges(cols['overflow'])}: statistics overflowed (squares of "
                     "values beyond about 1e154, fourth powers beyond 1e77) and show inf or nan")
    if counts is not None:  # underflow in layers where no network was dropped
        dropped = counts["dropped"]
        forward = backward = None  # none: counts' forward and backward set nowhere
        if hits[FORWARD]:
            forward = counts["forward"] & ~(dropped["z"] | dropped["a"])
        if hits[BACKWARD]:
            backward = counts["backward"] & ~dropped["delta"]
            if forward is not None:
                backward &= ~forward
    else:  # guessed from the columns: SEs NaN where values underflow
        forward = cols["underflow"] & np.isnan(cols["q_mean_se"]) & ~cols["overflow"]
        backward = cols["underflow"] & ~forward
    if forward is not None and forward.any():
        lines.append(f"{layer_ranges(forward)}: values underflow (mean squares below {TINY:g}, or "
                     "exactly 0 after such a layer): their SEs, kurtosis and dead fraction "
                     "show nan, and zeros there are not measurements")
    if counts is not None and hits[ZERO]:
        lines.append(f"{layer_ranges(counts['zero'])}: the values are exactly 0 in every network "
                     "(every network drawn died there, as dead ReLUs do), though their true "
                     "mean is not 0: the networks that carry it are too rare for their "
                     "number, so q and m there are not measurements and their SEs show nan; "
                     "wider layers help, more trials only slowly")
    if backward is not None and backward.any():
        lines.append(f"{layer_ranges(backward)}: the gradients are exactly 0 in every network "
                     "(phi' underflowed, or is 0 there): their SEs show nan")
    # a variance's SE NaN where nothing else is wrong: lost to rounding
    # (fastvar.kernels.columns._between_networks); looked at where any SE is NaN
    rounded = []
    for se, sq in ROUNDED:
        if np.count_nonzero(np.isnan(cols[se])):
            mask = np.isnan(cols[se]) & np.isfinite(cols[sq]) & cols["complete"]
            if mask.any():
                rounded.append(f"{se} at {layer_ranges(mask)}")
    if rounded:
        lines.append(f"{', '.join(rounded)} "
                     "show nan: the values' mean is so far above their spread between networks "
                     "(sigmoid at a tiny gain, say, a = 1/2 + tiny) that rounding would swamp "
                     "these SEs; the variances themselves are measured")
    for flag, (what, ses) in HEAVY_TAILS.items():
        if np.count_nonzero(cols[flag]):
            lines.append(f"{layer_ranges(cols[flag])}: {what} is too heavy-tailed over networks "
                         "for their number (fewer than two networks are expected in the tail "
                         f"that carries half its variance): {', '.join(ses)} there are "
                         "unreliable (such tails make them too small in most runs); more "
                         "trials help only slowly, wider or fewer layers help")
    return lines


def slopes(res: Result, c_star: "float | None" = None) -> dict[str, np.ndarray]:
    """Measured per-layer rates chi_g and chi_c with SEs, and their theory.

    See :meth:`Result.slopes`.

    Parameters
    ----------
    res : Result
        The result.
    c_star : float or None
        The correlation map's fixed point (default: the theory's, when all layers share one
        sigma_w^2).

    Returns
    -------
    dict of str to numpy.ndarray
        ``layer``, ``chi_g``, ``chi_g_se``, ``chi_g_theory``, ``chi_c``, ``chi_c_se``,
        ``chi_c_theory``, each of shape (L,).

    Raises
    ------
    ValueError
        ``c_star`` left out while the layers have different sigma_w^2.
    """
    depth = res.network.depth
    nan = np.full(depth, np.nan)
    out = {"layer": np.arange(1, depth + 1)}
    chi_g, chi_g_se = ratio_of_means(res.stats[:, LINK])
    theory = res["g_theory"]
    out["chi_g"] = np.append(chi_g[:-1], np.nan) if res.gradients else nan
    out["chi_g_se"] = np.append(chi_g_se[:-1], np.nan) if res.gradients else nan
    with np.errstate(divide="ignore", invalid="ignore"):
        out["chi_g_theory"] = np.append(theory[:-1] / theory[1:], np.nan)
    if res.input_correlation is None:
        out.update(chi_c=nan, chi_c_se=nan, chi_c_theory=nan)
        return out
    if c_star is None:
        sw2 = res.network.sigma_w2
        if not np.allclose(sw2, sw2[0], rtol=1e-12):
            raise ValueError("the layers have different sigma_w^2: pass c_star")
        c_star = correlation_fixed_point(res.network.activation_fn, float(sw2[0]),
                                         res.network.bias_std ** 2)[0]
    out["chi_c"], out["chi_c_se"] = ratio_of_means(res.stats[:, NET], c_star)
    c = np.concatenate([[res.input_correlation], res["c_theory"]])
    with np.errstate(divide="ignore", invalid="ignore"):
        out["chi_c_theory"] = (c[1:] - c_star) / (c[:-1] - c_star)
    return out


def theory_columns(network: Network, *, gradients: bool, input_q0: float,
                   input_q0_rows: "tuple[np.ndarray, np.ndarray] | None" = None,
                   input_correlation: "float | None" = None, normal_inputs: bool = True
                   ) -> dict[str, Callable[[], dict[str, np.ndarray]]]:
    """The infinite-width columns of a run (:mod:`fastvar.theory`), each as a function.

    Returns name -> function computing that column (and any computed with it), to be
    called on first use (:class:`Columns`): the maps of a deep network take a while, and a
    Result read back from a file may never need them. ``q_theory`` and ``g_theory`` (NaN
    without ``gradients``) are one computation: for a data set (``input_q0_rows``: its
    distinct row lengths and their counts) the average over rows of the maps started at
    each row's length. ``c_theory`` is the correlation map of the pairs' c0 and q0, NaN
    without pairs. ``z_kurt_theory``, ``q_var_theory`` and ``g_var_theory`` are the
    finite-width theory (:func:`fastvar.finite_width.finite_width_columns`) of fresh N(0, I)
    inputs if ``normal_inputs``, else of the fixed input or the rows. The functions pickle
    (partials of module functions), as a Result does.

    Parameters
    ----------
    network : Network
        The network.
    gradients : bool
        Whether the run has gradients.
    input_q0 : float
        Mean squared input entry.
    input_q0_rows : tuple of two numpy.ndarray or None
        A data set's distinct row lengths and their counts.
    input_correlation : float or None
        The pairs' c0 (None: no pairs).
    normal_inputs : bool
        Fresh N(0, I) inputs per trial (for the finite-width theory).

    Returns
    -------
    dict of str to callable
        Column name -> a function of no arguments returning a dict of columns (shape (L,)).
    """
    maps = functools.partial(mean_field_columns, network, gradients, input_q0, input_q0_rows)
    # pairs of data-set rows: the theory would be the average of every pair's map (each
    # with its own two lengths and cosine); the map of the mean is off by tens of SE
    # where the rows' lengths differ, so it is not shown
    pairs = input_correlation is not None and input_q0_rows is None
    correlation = functools.partial(_correlation_column, network,
                                    input_correlation if pairs else None, input_q0)
    start = {"q0": input_q0} if input_q0_rows is None else {"q0": input_q0_rows[0],
                                                             "counts": input_q0_rows[1]}
    finite = functools.partial(finite_width_columns, network, normal_inputs=normal_inputs,
                               gradients=gradients, **start)
    return {"q_theory": maps, "g_theory": maps, "c_theory": correlation,
            **dict.fromkeys(FINITE_WIDTH_COLUMNS, finite)}


def mean_field_columns(network: Network, gradients: bool, q0: float,
                       q0_rows: "tuple[np.ndarray, np.ndarray] | None"
                       ) -> dict[str, np.ndarray]:
    """The infinite-width columns q_theory and g_theory.

    Parameters
    ----------
    network : Network
        The network, L layers.
    gradients : bool
        Whether g_theory is computed (NaN without gradients).
    q0 : float
        Mean squared input entry.
    q0_rows : tuple of two float64 arrays, or None
        A data set's sorted distinct row lengths and their counts (the theory is then the
        row average), or None.

    Returns
    -------
    dict
        ``{"q_theory": (L,) float64, "g_theory": (L,) float64}``.
    """
    start = {"q0": q0} if q0_rows is None else {"q0": q0_rows[0], "counts": q0_rows[1]}
    if gradients:
        q, g = mean_field_maps(network, **start)
    else:
        q, g = variance_map(network, **start), np.full(network.depth, np.nan)
    return {"q_theory": q, "g_theory": g}


def _correlation_column(network: Network, c0: "float | None", q0: float
                        ) -> dict[str, np.ndarray]:
    """c_theory: the correlation map from (c0, q0), NaN for c0 None."""
    if c0 is None:
        return {"c_theory": np.full(network.depth, np.nan)}
    return {"c_theory": correlation_map(network, c0, q0)}


class Columns(MutableMapping):
    """Per-layer columns by name, in order, some of them computed on first access.

    ``values`` maps names to arrays; ``later`` maps further names (which follow them) to
    functions that compute them, as from :func:`theory_columns`; a function's whole dict
    is kept, so a function shared by several names runs once. Membership, iteration and
    ``len`` compute nothing.

    Parameters
    ----------
    values : mapping of str to numpy.ndarray
        Columns already computed, shape (L,) each.
    later : mapping of str to callable or None
        Columns computed on first access: name -> function returning a dict of columns.
    """

    def __init__(self, values: Mapping[str, np.ndarray],
                 later: "Mapping[str, Callable[[], dict[str, np.ndarray]]] | None" = None
                 ) -> None:
        self._later = dict(later or {})
        self._values: "dict[str, np.ndarray | None]" = {**values, **dict.fromkeys(self._later)}
        #: seconds spent computing the later columns so far
        self.seconds = 0.0

    def __getitem__(self, name: str) -> np.ndarray:
        value = self._values[name]
        if value is None:
            start = time.perf_counter()
            try:
                computed = self._later[name]()
            finally:
                self.seconds += time.perf_counter() - start
            for key, column in computed.items():
                self._values[key] = column
                self._later.pop(key, None)
            value = self._values[name]
        return value

    def compute_all(self) -> None:
        """Compute every column not computed yet."""
        for name in list(self._later):
            self[name]

    def abandon(self, size: int) -> list[str]:
        """Give up the columns not computed yet: they become NaN.

        Parameters
        ----------
        size : int
            Their length (the number of layers).

        Returns
        -------
        list of str
            The names of the columns abandoned.
        """
        names = list(self._later)
        for name in names:
            self[name] = np.full(size, np.nan)
        return names

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        self._later.pop(name, None)
        self._values[name] = value

    def __delitem__(self, name: str) -> None:
        self._later.pop(name, None)
        del self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)
