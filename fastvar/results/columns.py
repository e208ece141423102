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
from ..kernels.accumulators import (A, DELTA, LINK, MOMENTS, NET, NONFINITE, PAIR, UNDEFINED,
                                    WELFORD, Z)
from ..moments import shape_statistics
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
# mean squares below TINY: their squares (SEs) and fourth powers (kurtosis) underflow
TINY = 1e-140
# what squares or fourth powers of underflowing values make meaningless, forward and backward
UNDERFLOW_COLUMNS = (("z_var_se", "z_skew", "z_kurt", "a_var_se", "q_mean_se", "q_var",
                      "m_mean_se", "m_var", "dead_frac", "dead_frac_se"),
                     ("grad_var_se", "g_mean_se", "g_var"))
GRADIENT_COLUMNS = ("grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var")
# statistics of each quantity that use only the networks (or trials, or values) whose values
# were all finite: where fewer than half of the networks are complete for that quantity
# (SURVIVORS_NEEDED), they describe a selected few (often the only ones that died early), not
# the networks drawn, and show NaN
SURVIVOR_COLUMNS = {"z": ("z_mean", "z_var", "z_var_se", "z_skew", "z_kurt",
                          "q_mean", "q_mean_se", "q_var"),
                    "a": ("a_mean", "a_var", "a_var_se", "m_mean", "m_mean_se", "m_var"),
                    "dead_frac": ("dead_frac", "dead_frac_se"),
                    "delta": GRADIENT_COLUMNS,
                    "c": PAIR_COLUMNS}
SURVIVORS_NEEDED = 0.5  # fraction of the networks that must be complete
# after COLUMNS, computed on first use; the finite-width ones from fastvar.finite_width
THEORY_COLUMNS = ("q_theory", "g_theory", "c_theory") + FINITE_WIDTH_COLUMNS
# networks expected in the tail that carries half the variance, below which SEs are flagged
TAIL_NETWORKS = 2.0
# heavy-tail flag -> (what is heavy-tailed, the SE columns it makes unreliable)
# SEs that show NaN where a quantity is exactly 0 in every network (:func:`all_zero`)
ZERO_COLUMNS = ("z_var_se", "a_var_se", "q_mean_se", "m_mean_se", "dead_frac_se")
HEAVY_TAILS = {"q_heavy_tails": ("q (or m)", ("q_mean_se", "z_var_se", "m_mean_se", "a_var_se")),
               "g_heavy_tails": ("g", ("g_mean_se", "grad_var_se"))}


class IncompleteStatisticsWarning(RuntimeWarning):
    """Some statistics of a Result were computed from fewer values than requested (NaN or
    infinite values left out) or overflowed, the ``complete`` column says which layers; or
    some standard errors are unreliable, as ``q_heavy_tails`` and ``g_heavy_tails`` say."""


def _pooled(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, variance, skewness, excess kurtosis of pooled unit values; rows (..., L, S)."""
    n, mean, m2, m3, m4 = (row[..., MOMENTS + i] for i in range(5))
    skew, kurt = shape_statistics(n, m2, m3, m4)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"mean": np.where(n > 0, mean, np.nan), "var": np.where(n > 0, m2 / n, np.nan),
                "skew": skew, "kurt": kurt}


# how many times the rounding of the variance's delta-method terms (2 eps |mean| / sd /
# sqrt(networks) of each) their difference must exceed, so that it is at most 10% of it:
# below, the variance's SE shows NaN
CANCELLATION = 20.0


def _between_networks(row: np.ndarray) -> dict[str, np.ndarray]:
    """SEs from the per-network (mean, mean square) pairs: of the variance and of E[x^2];
    rows (..., L, S)."""
    n, mx, my, cxx, cxy, cyy = (row[..., PAIR + i] for i in range(6))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = 1.0 / ((n - 1.0) * n)  # sample covariance / n: covariance of the means
        # Var(mean x^2 - mean x^2 ...) by the delta method: (2 mx)^2 cxx - 2 (2 mx) cxy + cyy,
        # divided through by its largest term before squaring so it cannot overflow
        big = np.maximum(np.abs(2 * mx) * np.sqrt(cxx), np.sqrt(cyy))
        unit = np.where(big > 0, big, 1.0)
        t = 2 * mx / unit
        inner = t * t * cxx - 2 * t * (cxy / unit) + (cyy / unit) / unit
        # Each network's x and y carry their rounding, eps |mean| or so, into its deviation
        # from the mean: relative to the spread between networks, eps |mean| / sd, which the
        # sums of squares above average down by sqrt(n) and carry twice. Where the
        # difference is not well above that share of its terms, its digits are rounding, not
        # the variance's spread (a with its mean 1e6 times its spread, sigmoid at gain 1e-6,
        # gave SEs of exactly 0, or 58x too large): NaN
        terms = t * t * cxx + np.abs(2 * t * (cxy / unit)) + (cyy / unit) / unit
        spread = np.fmax(np.abs(mx) / np.sqrt(cxx / (n - 1.0)),
                         np.abs(my) / np.sqrt(cyy / (n - 1.0)))
        rounding = inner <= (CANCELLATION * np.finfo(float).eps * spread * terms
                             / np.sqrt(n))
        var_se = np.where(rounding, np.nan, big * np.sqrt(np.maximum(inner, 0.0) * scale))
        return {"var_se": var_se, "sq_se": np.sqrt(cyy) * np.sqrt(scale)}


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
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        var = np.where(n > 1, m2 / (n - 1.0), np.nan)  # not -0.0 from n = 0
        return np.where(n > 0, mean, np.nan), var, np.sqrt(var / n)


def _lengths(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, variance (ddof=1) and SE of the mean of a welford state (per-trial lengths
    ||x||^2 / n, or per-network cosines); rows (..., L, S)."""
    mean, var, se = mean_var_se(*(row[..., WELFORD + i] for i in range(3)))
    return {"mean": mean, "var": var, "se": se}


def _split(columns: dict[str, np.ndarray], count: int) -> list[dict[str, np.ndarray]]:
    """The statistics of stacked quantities (first axis), one dict per quantity."""
    return [{name: value[i] for name, value in columns.items()} for i in range(count)]


def _per_network(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean over networks of a per-network value kept as moments, and its SE."""
    n, mean, m2 = (row[:, MOMENTS + i] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"mean": np.where(n > 0, mean, np.nan), "se": np.sqrt(m2 / ((n - 1.0) * n))}


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
    n, my, cyy = row[..., PAIR], row[..., PAIR + 2], row[..., PAIR + 5]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        relative_sd = np.sqrt(cyy / (n - 1.0)) / np.abs(my)  # not cyy / my^2: may overflow
        v = relative_sd * relative_sd
        sigma2 = np.log1p(v)
        # Phi(-2 sigma); NaN where undefined
        beyond = np.array([0.5 * math.erfc(math.sqrt(2.0 * s)) if s >= 0 else math.nan
                           for s in sigma2.ravel().tolist()]).reshape(sigma2.shape)
        return (n > 1) & (v > 1.0) & (n * beyond < TAIL_NETWORKS)


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
    SURVIVORS_NEEDED of the networks are used, all False if ``networks`` is None, and for
    "delta" without gradients); ``forward`` and ``backward``: the layers
    that :func:`_underflow` finds, before layers with dropped networks are taken out;
    ``zero``: the layers where z or a is exactly 0 in every network (:func:`all_zero`).

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
    rows = {"z": Z, "a": A, "delta": DELTA}
    kept = {q: stats[:, row, PAIR].copy() for q, row in rows.items()}
    dropped = {q: stats[:, row, NONFINITE] > 0 for q, row in rows.items()}
    dropped["c"] = stats[:, NET, NONFINITE] > 0
    total = np.nan if networks is None else float(networks)
    kept["c"] = total - stats[:, NET, NONFINITE]  # one cosine per network
    kept["dead_frac"] = stats[:, NET, MOMENTS].copy()
    # kept < SURVIVORS_NEEDED * networks, with no rounding: kept networks are whole
    lost = {q: kept[q] < SURVIVORS_NEEDED * total for q in kept}
    if not gradients:
        dropped["delta"] = lost["delta"] = np.zeros(stats.shape[0], dtype=bool)
    forward, backward = _underflow(stats, gradients, zero_gradients)
    # survivors' zeros after an overflow (those that died early) are the survivor rule's
    zero = all_zero(stats, zero_inputs) & ~forward & ~(dropped["z"] | dropped["a"])
    return {"networks": networks, "kept": kept, "dropped": dropped, "lost": lost,
            "forward": forward, "backward": backward, "zero": zero}


def compute_columns(stats: np.ndarray, widths, gradients: bool, pairs: bool = False,
                    zero_gradients: bool = False, networks: "int | None" = None,
                    zero_inputs: bool = False, counts: "dict | None" = None
                    ) -> dict[str, np.ndarray]:
    """All result columns from a merged stats array of shape (L, ROWS, STATS_SIZE).

    Besides the statistics, per layer: ``nonfinite_z/_a/_delta`` count the NaN or infinite
    unit values left out; ``overflow`` is True where the accumulated sums themselves
    overflowed (values beyond about 1e154, or 1e77 for the fourth moments); ``complete``
    is True where neither happened and nothing underflowed (``underflow``, see
    :func:`_underflow`), i.e. every statistic of the layer uses every value, and z and a
    are not exactly 0 in every network (:func:`all_zero`: the SEs there show NaN).
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
    z, a, d = stats[:, Z], stats[:, A], stats[:, DELTA]
    # each statistic of z, a and delta (and the lengths of the NET row) in one pass over the
    # stacked rows (quantity, L, S): a small call's columns cost a few numpy calls, not dozens
    stacked = np.ascontiguousarray(stats[:, [Z, A, DELTA, NET]].transpose(1, 0, 2))
    zp, ap, dp = _split(_pooled(stacked[:3]), 3)
    zs, as_, ds = _split(_between_networks(stacked[:3]), 3)
    zq, aq, dq, cos = _split(_lengths(stacked), 4)
    dead = _per_network(stats[:, NET])
    used = stats[:, [Z, A, NET, DELTA, LINK] if gradients else [Z, A, NET]]
    bad = used[..., NONFINITE].sum(axis=1)
    overflow = ~np.isfinite(np.delete(used, NONFINITE, axis=2)).all(axis=(1, 2))
    if counts is None:
        counts = network_counts(stats, networks, gradients, zero_gradients, zero_inputs)
    forward, backward, zero = counts["forward"], counts["backward"], counts["zero"]
    # gradients exactly 0 in every network at or below a layer where every network died
    dead_below = np.logical_or.accumulate(zero[::-1])[::-1]
    dropped = counts["dropped"]
    # survivors' zeros after an overflow are not an underflow: no such claim there
    underflow = ((forward & ~(dropped["z"] | dropped["a"])) | (backward & ~dropped["delta"]))
    heavy_z, heavy_a, heavy_d = heavy_tails(stacked[:3])
    cols = {
        "layer": np.arange(1, stats.shape[0] + 1), "width": np.asarray(widths[1:]),
        "z_mean": zp["mean"], "z_var": zp["var"], "z_var_se": zs["var_se"],
        "z_skew": zp["skew"], "z_kurt": zp["kurt"],
        "a_mean": ap["mean"], "a_var": ap["var"], "a_var_se": as_["var_se"],
        "q_mean": zq["mean"], "q_mean_se": zs["sq_se"], "q_var": zq["var"],
        "grad_var": dp["var"], "grad_var_se": ds["var_se"],
        "g_mean": dq["mean"], "g_mean_se": ds["sq_se"], "g_var": dq["var"],
        "m_mean": aq["mean"], "m_mean_se": as_["sq_se"], "m_var": aq["var"],
        "c_mean": cos["mean"], "c_mean_se": cos["se"],
        "c_undefined": stats[:, NET, UNDEFINED].astype(np.int64),
        "dead_frac": dead["mean"], "dead_frac_se": dead["se"],
        "nonfinite_z": z[:, NONFINITE].astype(np.int64),
        "nonfinite_a": a[:, NONFINITE].astype(np.int64),
        "nonfinite_delta": d[:, NONFINITE].astype(np.int64),
        "overflow": overflow, "underflow": underflow,
        "complete": (bad == 0) & ~overflow & ~underflow & ~zero,
        "q_heavy_tails": ((heavy_z | heavy_a) & ~forward) | zero,
        "g_heavy_tails": ((heavy_d & ~backward) | (backward & dead_below)) & gradients,
    }
    for names, flags in ((ZERO_COLUMNS, zero),) + tuple(zip(UNDERFLOW_COLUMNS,
                                                            (forward, backward))):
        if flags.any():  # else untouched: the same numbers
            for name in names:
                cols[name] = np.where(flags, np.nan, cols[name])
    for quantity, names in SURVIVOR_COLUMNS.items():
        lost = counts["lost"][quantity]
        if lost.any():  # else untouched: bitwise today's numbers
            for name in names:
                cols[name] = np.where(lost, np.nan, cols[name])
    lost_forward = counts["lost"]["z"] | counts["lost"]["a"] | counts["lost"]["dead_frac"]
    cols["q_heavy_tails"] = cols["q_heavy_tails"] & ~lost_forward  # no '!' on NaN
    cols["g_heavy_tails"] = cols["g_heavy_tails"] & ~counts["lost"]["delta"]
    for name in (() if gradients else GRADIENT_COLUMNS) + (() if pairs else PAIR_COLUMNS):
        cols[name] = np.full(stats.shape[0], np.nan)
    return cols


def all_zero(stats: np.ndarray, zero_inputs: bool = False) -> np.ndarray:
    """Layers where z or a is exactly 0 in every network, shape (L,) bool.

    Every network drawn died there (dead ReLUs: a^l = 0, then z^{l+1} = 0 without biases),
    yet the true mean of q or m is not 0 (E q = 2 for ReLU with He weights at any width):
    the networks that carry it are too rare for their number. The sample's mean is 0 and
    its variance 0, so its SEs (0) would be wrong: they show NaN and the layer is flagged
    as heavy-tailed (no network at all in the tail). Nothing is flagged where
    ``zero_inputs`` says the values are truly 0 (an all-zero input without biases).

    Parameters
    ----------
    stats : numpy.ndarray
        Merged stats, shape (L, ROWS, S).
    zero_inputs : bool
        Every value may be exactly 0 truly.

    Returns
    -------
    numpy.ndarray
        Shape (L,), bool.
    """
    if zero_inputs:
        return np.zeros(stats.shape[0], dtype=bool)
    n_z, n_a = stats[:, Z, PAIR], stats[:, A, PAIR]
    zero_z = (n_z > 0) & (stats[:, Z, PAIR + 2] == 0)  # mean over networks of their q
    zero_a = (n_a > 0) & (stats[:, A, PAIR + 2] == 0)
    return zero_z | zero_a


def _underflow(stats: np.ndarray, gradients: bool,
               zero_gradients: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Layers whose values are so small that their statistics underflow: (forward,
    backward), shape (L,) bool each, for z and a, and for the gradients.

    A mean square below TINY leaves the SEs (squares of it) and the kurtosis (fourth
    powers) at 0 or subnormal; values that underflowed to exactly 0 pass that on: z^l = 0
    after an underflowing layer, and gradients that are 0 in every network below the
    output, unless ``zero_gradients`` says they can truly be (a norm over 1 or 2 units is
    constant, so its Jacobian is 0).
    """
    def mean_square(row):
        n, mean = stats[:, row, WELFORD], stats[:, row, WELFORD + 1]
        return np.where(n > 0, mean, np.nan)

    def tiny(ms):
        return (ms > 0) & (ms < TINY)

    zs, as_, ds = mean_square(Z), mean_square(A), mean_square(DELTA)
    depth = stats.shape[0]
    # forward[i] = tiny at i, or forward[i - 1] and z or a exactly 0 at i: the layers from a
    # tiny one on while zeros follow it (no layer since the last tiny one without a zero)
    layers = np.arange(depth)
    last_tiny = np.maximum.accumulate(np.where(tiny(zs) | tiny(as_), layers, -1))
    last_nonzero = np.maximum.accumulate(np.where((zs == 0) | (as_ == 0), -1, layers))
    forward = (last_tiny >= 0) & (last_nonzero <= last_tiny)
    if not gradients:
        return forward, np.zeros(depth, dtype=bool)
    # below the output (where delta ~ N(0, I)), gradients that are exactly 0 in every
    # network come from phi' underflowing (tanh'(1e50) = 1 - 1.0 = 0, not e^-1e50) or from
    # zeros above: what they would measure is lost
    backward = tiny(ds) | ((ds == 0) & (np.arange(depth) < depth - 1) & (not zero_gradients))
    return forward, backward


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
    lines = []
    quantities = [q for q in ("z", "a", "delta") if cols[f"nonfinite_{q}"].any()]
    parts = [f"{q} at {layer_ranges(cols[f'nonfinite_{q}'] > 0)} "
             f"({int(cols[f'nonfinite_{q}'].sum())} values)" for q in quantities]
    if parts:
        which = "the networks"
        if counts is not None and counts["networks"] is not None:
            # the fewest networks any statistic named here rests on
            fewest = min(int(counts["kept"][q][cols[f"nonfinite_{q}"] > 0].min())
                         for q in quantities)
            which = f"the {fewest} of {counts['networks']} networks"
        line = (f"NaN or infinite values (overflow) were left out: {', '.join(parts)}; "
                f"q, g and the SEs there use only {which} whose values were all finite")
        lines.append(line)
    if counts is not None:
        lost = [(q, counts["lost"][q]) for q in SURVIVOR_COLUMNS if counts["lost"][q].any()]
        if lost:
            fewest = min(int(counts["kept"][q][mask].min()) for q, mask in lost)
            where = ", ".join(f"{q} at {layer_ranges(mask)}" for q, mask in lost)
            lines.append(f"fewer than half of the networks (as few as {fewest} of "
                         f"{counts['networks']}) had finite values or lengths for {where}: "
                         "the statistics of those values there show nan, as the networks "
                         "left are no sample of those drawn (at overflow, often only those "
                         "that died early); lower sigma_w^2 or use fewer layers")
    if cols["overflow"].any():
        lines.append(f"{layer_ranges(cols['overflow'])}: statistics overflowed (squares of "
                     "values beyond about 1e154, fourth powers beyond 1e77) and show inf or nan")
    if counts is not None:  # underflow in layers where no network was dropped
        dropped = counts["dropped"]
        forward = counts["forward"] & ~(dropped["z"] | dropped["a"])
        backward = counts["backward"] & ~dropped["delta"] & ~forward
    else:  # guessed from the columns: SEs NaN where values underflow
        forward = cols["underflow"] & np.isnan(cols["q_mean_se"]) & ~cols["overflow"]
        backward = cols["underflow"] & ~forward
    if forward.any():
        lines.append(f"{layer_ranges(forward)}: values underflow (mean squares below {TINY:g}, or "
                     "exactly 0 after such a layer): their SEs, kurtosis and dead fraction "
                     "show nan, and zeros there are not measurements")
    if counts is not None and counts["zero"].any():
        lines.append(f"{layer_ranges(counts['zero'])}: the values are exactly 0 in every network "
                     "(every network drawn died there, as dead ReLUs do), though their true "
                     "mean is not 0: the networks that carry it are too rare for their "
                     "number, so q and m there are not measurements and their SEs show nan; "
                     "wider layers help, more trials only slowly")
    if backward.any():
        lines.append(f"{layer_ranges(backward)}: the gradients are exactly 0 in every network "
                     "(phi' underflowed, or is 0 there): their SEs show nan")
    # a variance's SE NaN where nothing else is wrong: lost to rounding (_between_networks)
    rounded = []
    for se, sq in (("z_var_se", "q_mean_se"), ("a_var_se", "m_mean_se"),
                   ("grad_var_se", "g_mean_se")):
        mask = np.isnan(cols[se]) & np.isfinite(cols[sq]) & cols["complete"]
        if mask.any():
            rounded.append(f"{se} at {layer_ranges(mask)}")
    if rounded:
        lines.append(f"{', '.join(rounded)} "
                     "show nan: the values' mean is so far above their spread between networks "
                     "(sigmoid at a tiny gain, say, a = 1/2 + tiny) that rounding would swamp "
                     "these SEs; the variances themselves are measured")
    for flag, (what, ses) in HEAVY_TAILS.items():
        if cols[flag].any():
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
