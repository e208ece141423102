"""Per-layer statistics of a merged stats array (L, ROWS, STATS_SIZE), for
:mod:`fastvar.results.columns`, which names them and explains them.

One call per Result does the elementwise arithmetic of a few dozen small NumPy calls: for
a network of a few layers those calls, not the numbers, were most of a small simulation's
time. Each value is computed by the same IEEE operations in the same order as the NumPy
code it replaced (no fastmath: nothing is reassociated), so the columns are the same to
the bit; ``np.maximum`` returns its second operand on ties (+0 against -0), as NumPy's does.
"""
import math

import numba
import numpy as np

from .accumulators import (A, DELTA, LINK, MOMENTS, NET, NONFINITE, PAIR, UNDEFINED,
                           WELFORD, Z)

# mean squares below TINY: their squares (SEs) and fourth powers (kurtosis) underflow
TINY = 1e-140
# how many times the rounding of the variance's delta-method terms (2 eps |mean| / sd /
# sqrt(networks) of each) their difference must exceed, so that it is at most 10% of it:
# below, the variance's SE shows NaN
CANCELLATION = 20.0
SURVIVORS_NEEDED = 0.5  # fraction of the networks that must be complete
EPS = float(np.finfo(np.float64).eps)

# rows of layer_columns' float output, in the order of the Result's columns
FLOATS = ("z_mean", "z_var", "z_var_se", "z_skew", "z_kurt", "a_mean", "a_var", "a_var_se",
          "q_mean", "q_mean_se", "q_var", "grad_var", "grad_var_se", "g_mean", "g_mean_se",
          "g_var", "m_mean", "m_mean_se", "m_var", "c_mean", "c_mean_se", "dead_frac",
          "dead_frac_se")
# rows after FLOATS in layer_columns' float output: counts, cast to int64 by the caller
COUNTS = ("nonfinite_z", "nonfinite_a", "nonfinite_delta", "c_undefined")
# rows of network_flags' bool output
DROPPED, LOST, FORWARD, BACKWARD, ZERO, FLAGS = 0, 4, 9, 10, 11, 12
# rows of layer_columns' bool output
BOOLS = ("overflow", "underflow", "complete", "q_heavy_tails", "g_heavy_tails")
# then: where heavy tails of z or a (Q_GATE), of delta (G_GATE) would set those two flags,
# and from CANDIDATES, z, a, delta may be heavy-tailed (tail_variance)
Q_GATE, G_GATE, CANDIDATES = 5, 6, 7

_jit = numba.njit(cache=True, error_model="numpy")
# helpers inlined into the kernels: one compilation each of those, not one per helper
_inline = numba.njit(cache=True, error_model="numpy", inline="always")


@_inline
def _maximum(a, b):
    # np.maximum: NaN propagates (the first operand's if both are), ties give the second
    if a != a:
        return a
    if b != b:
        return b
    return a if a > b else b


@_inline
def _fmax(a, b):
    # np.fmax: NaN only if both are (the sign of a zero result is not used)
    if b != b:
        return a
    if a != a:
        return b
    return a if a >= b else b


@_inline
def _shape(n, m2, m3, m4):
    if m2 > 0:
        return math.sqrt(n) * (m3 / m2) / math.sqrt(m2), n * (m4 / m2) / m2 - 3.0
    return np.nan, np.nan


@_jit
def shape_statistics(n, m2, m3, m4):
    """Skewness and excess kurtosis from counts and central sums, elementwise.

    Parameters
    ----------
    n, m2, m3, m4 : numpy.ndarray
        Counts and central sums M2, M3, M4: 1-D float64 arrays of one length.

    Returns
    -------
    skew, kurt : numpy.ndarray
        That length: see :func:`fastvar.moments.shape_statistics`.
    """
    skew, kurt = np.empty(n.shape[0]), np.empty(n.shape[0])
    for i in range(n.shape[0]):
        skew[i], kurt[i] = _shape(n[i], m2[i], m3[i], m4[i])
    return skew, kurt


@_inline
def _mean_var_se(n, mean, m2):
    var = m2 / (n - 1.0) if n > 1 else np.nan  # not -0.0 from n = 0
    return mean if n > 0 else np.nan, var, math.sqrt(var / n)


@_jit
def mean_var_se(n, mean, m2):
    """Mean, variance (ddof=1) and SE of the mean of (count, mean, M2) states.

    Parameters
    ----------
    n, mean, m2 : numpy.ndarray
        The states' counts, means and sums of squared deviations: 1-D float64 arrays of one
        length.

    Returns
    -------
    mean, var, se : numpy.ndarray
        That length: see :func:`fastvar.results.columns.mean_var_se`.
    """
    size = n.shape[0]
    out = np.empty((3, size))
    for i in range(size):
        out[0, i], out[1, i], out[2, i] = _mean_var_se(n[i], mean[i], m2[i])
    return out[0], out[1], out[2]


@_inline
def _between_networks(n, mx, my, cxx, cxy, cyy):
    # SEs of the variance and of E[x^2] from per-network (mean, mean square) pairs
    scale = 1.0 / ((n - 1.0) * n)  # sample covariance / n: covariance of the means
    # Var(mean x^2 - mean x^2 ...) by the delta method: (2 mx)^2 cxx - 2 (2 mx) cxy + cyy,
    # divided through by its largest term before squaring so it cannot overflow
    big = _maximum(abs(2 * mx) * math.sqrt(cxx), math.sqrt(cyy))
    unit = big if big > 0 else 1.0
    t = 2 * mx / unit
    inner = t * t * cxx - 2 * t * (cxy / unit) + (cyy / unit) / unit
    # Each network's x and y carry their rounding, eps |mean| or so, into its deviation from
    # the mean: relative to the spread between networks, eps |mean| / sd, which the sums of
    # squares above average down by sqrt(n) and carry twice. Where the difference is not
    # well above that share of its terms, its digits are rounding, not the variance's
    # spread (a with its mean 1e6 times its spread, sigmoid at gain 1e-6, gave SEs of
    # exactly 0, or 58x too large): NaN
    terms = t * t * cxx + abs(2 * t * (cxy / unit)) + (cyy / unit) / unit
    spread = _fmax(abs(mx) / math.sqrt(cxx / (n - 1.0)), abs(my) / math.sqrt(cyy / (n - 1.0)))
    if inner <= CANCELLATION * EPS * spread * terms / math.sqrt(n):
        var_se = np.nan
    else:
        var_se = big * math.sqrt(_maximum(inner, 0.0) * scale)
    return var_se, math.sqrt(cyy) * math.sqrt(scale)


@_inline
def _tail_variance(row):
    n = row[PAIR]
    relative_sd = math.sqrt(row[PAIR + 5] / (n - 1.0)) / abs(row[PAIR + 2])  # not cyy / my^2
    v = relative_sd * relative_sd
    return v, n > 1 and v > 1.0


@_jit
def tail_variance(rows):
    """Relative variance over networks v = s^2 / mean^2 of pair states' y, and whether it
    can be heavy-tailed (see :func:`fastvar.results.columns.heavy_tails`).

    Parameters
    ----------
    rows : numpy.ndarray
        Stats rows holding pair states, shape (N, S), C-contiguous float64.

    Returns
    -------
    v : numpy.ndarray
        (N,) float64: the relative variance (NaN where undefined).
    candidate : numpy.ndarray
        (N,) bool: more than one network and v > 1.
    """
    v = np.empty(rows.shape[0])
    candidate = np.zeros(rows.shape[0], dtype=np.bool_)
    for i in range(rows.shape[0]):
        v[i], candidate[i] = _tail_variance(rows[i])
    return v, candidate


@_jit
def network_flags(stats, gradients, zero_gradients, zero_inputs, total):
    """Networks kept per quantity and the flags of :func:`fastvar.results.columns.network_counts`.

    Parameters
    ----------
    stats : numpy.ndarray
        Merged stats, shape (L, ROWS, S), C-contiguous float64.
    gradients, zero_gradients, zero_inputs : bool
        As for ``network_counts``.
    total : float
        Networks drawn (NaN: unknown).

    Returns
    -------
    kept : numpy.ndarray
        (5, L) float64: networks kept for z, a, delta, the cosine c and the dead fraction.
    flags : numpy.ndarray
        (FLAGS, L) bool: from row DROPPED, z, a, delta, c dropped (non-finite values left
        out); from LOST, z, a, delta, c and the dead fraction lost (fewer than
        SURVIVORS_NEEDED of the networks kept); FORWARD, BACKWARD (underflow) and ZERO.
    """
    depth = stats.shape[0]
    kept = np.empty((5, depth))
    flags = np.zeros((FLAGS, depth), dtype=np.bool_)
    last_tiny, last_nonzero = -1, -1
    ms, tiny = np.empty(3), np.empty(3, dtype=np.bool_)  # mean squares of z, a, delta
    for i in range(depth):
        for q, row in enumerate((Z, A, DELTA)):
            kept[q, i] = stats[i, row, PAIR]
            flags[DROPPED + q, i] = stats[i, row, NONFINITE] > 0
            ms[q] = stats[i, row, WELFORD + 1] if stats[i, row, WELFORD] > 0 else np.nan
            tiny[q] = ms[q] > 0 and ms[q] < TINY
        flags[DROPPED + 3, i] = stats[i, NET, NONFINITE] > 0
        kept[3, i] = total - stats[i, NET, NONFINITE]  # one cosine per network
        kept[4, i] = stats[i, NET, MOMENTS]
        for q in range(5):
            # with no rounding: kept networks are whole
            flags[LOST + q, i] = kept[q, i] < SURVIVORS_NEEDED * total
        # forward: tiny at i, or forward at i - 1 and z or a exactly 0 at i: the layers from
        # a tiny one on while zeros follow it (no layer since the last tiny one without a
        # zero)
        if tiny[0] or tiny[1]:
            last_tiny = i
        if not (ms[0] == 0 or ms[1] == 0):
            last_nonzero = i
        flags[FORWARD, i] = last_tiny >= 0 and last_nonzero <= last_tiny
        if gradients:
            # below the output (where delta ~ N(0, I)), gradients that are exactly 0 in
            # every network come from phi' underflowing (tanh'(1e50) = 1 - 1.0 = 0, not
            # e^-1e50) or from zeros above: what they would measure is lost
            flags[BACKWARD, i] = tiny[2] or (ms[2] == 0 and i < depth - 1 and not zero_gradients)
        else:
            flags[DROPPED + 2, i] = flags[LOST + 2, i] = False
        all_zero = not zero_inputs and (
            (stats[i, Z, PAIR] > 0 and stats[i, Z, PAIR + 2] == 0)
            or (stats[i, A, PAIR] > 0 and stats[i, A, PAIR + 2] == 0))
        # survivors' zeros after an overflow (those that died early) are the survivor rule's
        flags[ZERO, i] = (all_zero and not flags[FORWARD, i]
                          and not (flags[DROPPED, i] or flags[DROPPED + 1, i]))
    return kept, flags


@_jit
def layer_columns(stats, gradients, pairs, counts, blank):
    """The float and bool columns of :func:`fastvar.results.columns.compute_columns`.

    Parameters
    ----------
    stats : numpy.ndarray
        Merged stats, shape (L, ROWS, S), C-contiguous float64.
    gradients, pairs : bool
        Whether the run has gradients, input pairs.
    counts : numpy.ndarray
        (FLAGS, L) bool: :func:`network_flags`' flags.
    blank : numpy.ndarray
        (len(FLOATS), FLAGS + 2) bool: which float columns show NaN where a flag is set
        (the last two: always without gradients, always without pairs).

    Returns
    -------
    floats : numpy.ndarray
        (len(FLOATS) + len(COUNTS), L) float64: FLOATS, then COUNTS as stored.
    bools : numpy.ndarray
        (CANDIDATES + 3, L) bool: BOOLS, with q_heavy_tails and g_heavy_tails as if nothing
        were heavy-tailed; then Q_GATE, G_GATE and CANDIDATES (whose heavy tails the caller
        confirms: ``q_heavy_tails |= (z or a heavy) & Q_GATE``, ``g_heavy_tails |= delta
        heavy & G_GATE``).
    v : numpy.ndarray
        (3, L) float64: the relative variance of z, a, delta over networks (tail_variance).
    """
    depth = stats.shape[0]
    floats = np.empty((len(FLOATS) + len(COUNTS), depth))
    bools = np.empty((CANDIDATES + 3, depth), dtype=np.bool_)
    v = np.empty((3, depth))
    flag = np.empty(FLAGS + 2, dtype=np.bool_)
    flag[FLAGS], flag[FLAGS + 1] = not gradients, not pairs
    used = (Z, A, NET, DELTA, LINK) if gradients else (Z, A, NET, NET, NET)
    count = 5 if gradients else 3
    # gradients exactly 0 in every network at or below a layer where every network died
    dead_below = False
    for i in range(depth - 1, -1, -1):
        dead_below = dead_below or counts[ZERO, i]
        for j in range(FLAGS):
            flag[j] = counts[j, i]
        out = floats[:, i]
        for q, row in enumerate((Z, A, DELTA)):
            s = stats[i, row]
            skew, kurt = _shape(s[MOMENTS], s[MOMENTS + 2], s[MOMENTS + 3], s[MOMENTS + 4])
            var_se, sq_se = _between_networks(s[PAIR], s[PAIR + 1], s[PAIR + 2], s[PAIR + 3],
                                              s[PAIR + 4], s[PAIR + 5])
            mean_sq, var_sq, _ = _mean_var_se(s[WELFORD], s[WELFORD + 1], s[WELFORD + 2])
            v[q, i], bools[CANDIDATES + q, i] = _tail_variance(s)
            n = s[MOMENTS]
            pooled_mean = s[MOMENTS + 1] if n > 0 else np.nan
            pooled_var = s[MOMENTS + 2] / n if n > 0 else np.nan
            if q == 0:
                out[0], out[1], out[2], out[3], out[4] = pooled_mean, pooled_var, var_se, skew, kurt
                out[8], out[9], out[10] = mean_sq, sq_se, var_sq
            elif q == 1:
                out[5], out[6], out[7] = pooled_mean, pooled_var, var_se
                out[16], out[17], out[18] = mean_sq, sq_se, var_sq
            else:
                out[11], out[12] = pooled_var, var_se
                out[13], out[14], out[15] = mean_sq, sq_se, var_sq
        s = stats[i, NET]
        out[19], _, out[20] = _mean_var_se(s[WELFORD], s[WELFORD + 1], s[WELFORD + 2])
        n = s[MOMENTS]
        out[21] = s[MOMENTS + 1] if n > 0 else np.nan
        out[22] = math.sqrt(s[MOMENTS + 2] / ((n - 1.0) * n))
        for q, row in enumerate((Z, A, DELTA)):
            out[len(FLOATS) + q] = stats[i, row, NONFINITE]
        out[len(FLOATS) + 3] = stats[i, NET, UNDEFINED]
        for c in range(len(FLOATS)):
            for j in range(FLAGS + 2):
                if blank[c, j] and flag[j]:
                    out[c] = np.nan
                    break
        bad = 0.0
        overflow = False
        for k in range(count):
            bad += stats[i, used[k], NONFINITE]
            for j in range(stats.shape[2]):
                if j != NONFINITE and not math.isfinite(stats[i, used[k], j]):
                    overflow = True
        # survivors' zeros after an overflow are not an underflow: no such claim there
        underflow = ((flag[FORWARD] and not (flag[DROPPED] or flag[DROPPED + 1]))
                     or (flag[BACKWARD] and not flag[DROPPED + 2]))
        lost_forward = flag[LOST] or flag[LOST + 1] or flag[LOST + 4]
        bools[0, i], bools[1, i] = overflow, underflow
        bools[2, i] = bad == 0 and not overflow and not underflow and not flag[ZERO]
        # heavy tails where the SEs are not NaN already; the layers where every network
        # died are (no network at all in the tail); no '!' on NaN
        bools[3, i] = flag[ZERO] and not lost_forward
        bools[Q_GATE, i] = not flag[FORWARD] and not lost_forward
        bools[4, i] = flag[BACKWARD] and dead_below and gradients and not flag[LOST + 2]
        bools[G_GATE, i] = not flag[BACKWARD] and gradients and not flag[LOST + 2]
    return floats, bools, v
