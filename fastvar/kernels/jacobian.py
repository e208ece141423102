"""Kernels of ``simulate(jacobian=True)``: the spectrum statistics of a Jacobian's Gram matrix.

The input-output Jacobian of layer l, J^l = D^l W^l ... D^1 W^1 (n_l x n_0, with
D^k = diag(phi'(z^k))), is built layer by layer by the direct engine, which carries it
transposed: the n_0 rows of (J^l)^T go through W^l as n_0 more inputs would
(:mod:`fastvar.kernels.direct`). Per layer its squared singular values lambda (n_l of
them, zeros included when n_l > n_0) are the eigenvalues of the Gram matrix G, J^T J
(n_0 x n_0) or J J^T (n_l x n_l), whichever is smaller. From G (:func:`gram_statistics`):

* m1 = tr(G) / n_l and m2 = ||G||_F^2 / n_l: no eigen-decomposition needed;
* lambda_max, exactly: G is reduced to a symmetric tridiagonal matrix by Householder
  reflections (backward stable, about 4 p^3 / 3 flops for p x p), whose largest eigenvalue
  is then found by bisection on Sturm counts down to adjacent floats. The result is
  within a few p eps ||G|| of the true lambda_max whatever the spectrum looks like (a
  power iteration's accuracy would depend on the gap at the top of the spectrum, which
  closes like p^(-2/3) at the edge of a continuous spectrum).

Plain loops in a fixed order: no BLAS and no threads inside, so a block's numbers are
bitwise the same on any thread count. Cost per layer and input: n_0 n_l n_{l-1}
multiply-adds for the layer, p^2 n for the Gram matrix, about 2 p^3 / 3 for the reduction.
"""
import math

import numba
import numpy as np

# bisection steps on the largest eigenvalue: each halves the bracket, which starts at
# most ~2 ||G|| wide; 200 reach adjacent floats from any start
_BISECTIONS = 200
# the spread m2 / m1^2 - 1 is measured only where m1^2 is at least this (the smallest normal
# float): below it m1^2, and m2 with it (m2 >= m1^2), have lost their digits to underflow
# or are 0, so the spread is NaN, as where m1 = 0
SPREAD_MIN_M1_SQUARED = float(np.finfo(np.float64).tiny)


@numba.njit(cache=True, fastmath={"reassoc", "contract"})
def _tridiagonalize(a, d, e, v, u):
    """Reduce the symmetric a (p x p, C-ordered, destroyed) to tridiagonal form by
    Householder reflections: diagonal d[:p], off-diagonal e[:p - 1]; v, u: scratch (p,)."""
    p = a.shape[0]
    for k in range(p - 2):
        r = p - k - 1
        d[k] = a[k, k]
        s = 0.0
        for i in range(r):  # x = a[k+1:, k], read from row k (symmetric)
            v[i] = a[k, k + 1 + i]
            s += v[i] * v[i]
        if s == 0.0:
            e[k] = 0.0
            continue
        alpha = -math.sqrt(s) if v[0] > 0.0 else math.sqrt(s)  # no cancellation in v[0]
        e[k] = alpha
        v[0] -= alpha  # H = I - beta v v^T maps x to alpha e_1
        vv = 0.0
        for i in range(r):
            vv += v[i] * v[i]
        beta = 2.0 / vv
        # B <- H B H = B - v w^T - w v^T, with u = beta B v, w = u - (beta / 2)(v.u) v
        vu = 0.0
        for i in range(r):
            row = a[k + 1 + i, k + 1:]
            t = 0.0
            for j in range(r):
                t += row[j] * v[j]
            u[i] = beta * t
            vu += v[i] * u[i]
        half = 0.5 * beta * vu
        for i in range(r):
            u[i] -= half * v[i]
        for i in range(r):
            row = a[k + 1 + i, k + 1:]
            vi, wi = v[i], u[i]
            for j in range(r):
                row[j] -= vi * u[j] + wi * v[j]
    if p >= 2:
        d[p - 2] = a[p - 2, p - 2]
        e[p - 2] = a[p - 2, p - 1]
    d[p - 1] = a[p - 1, p - 1]


@numba.njit(cache=True)
def _count_below(d, e, x, pivmin):
    # eigenvalues of the tridiagonal (d, e) below x: negative pivots of T - x I = L D L^T
    p = d.shape[0]
    count = 0
    q = d[0] - x
    for i in range(p):
        if i > 0:
            q = d[i] - x - e[i - 1] * e[i - 1] / q
        if abs(q) < pivmin:
            q = -pivmin
        if q < 0.0:
            count += 1
    return count


@numba.njit(cache=True)
def largest_eigenvalue(d, e):
    """The largest eigenvalue of a symmetric tridiagonal matrix, by bisection on Sturm counts.

    Parameters
    ----------
    d : numpy.ndarray
        float64 (p,), the diagonal (finite).
    e : numpy.ndarray
        float64 (p - 1,), the off-diagonal (finite).

    Returns
    -------
    float
        lambda_max, to within a few ulps of the matrix's scale.
    """
    p = d.shape[0]
    scale = 0.0
    for i in range(p):
        scale = max(scale, abs(d[i]) + (abs(e[i]) if i < p - 1 else 0.0)
                    + (abs(e[i - 1]) if i > 0 else 0.0))
    if scale == 0.0:
        return 0.0
    lo = -np.inf
    hi = -np.inf
    for i in range(p):  # lambda_max >= max d (a Rayleigh quotient); Gershgorin bounds above
        lo = max(lo, d[i])
        hi = max(hi, d[i] + (abs(e[i]) if i < p - 1 else 0.0) + (abs(e[i - 1]) if i > 0 else 0.0))
    hi += 4.0 * np.finfo(np.float64).eps * scale
    pivmin = np.finfo(np.float64).tiny / np.finfo(np.float64).eps * max(1.0, scale * scale)
    for _ in range(_BISECTIONS):
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            break
        if _count_below(d, e, mid, pivmin) == p:
            hi = mid
        else:
            lo = mid
    return 0.5 * (lo + hi)


@numba.njit(cache=True)
def gram_statistics(g, n_rows, d, e, v, u):
    """(m1, m2, lambda_max) of the squared singular values of a Jacobian from its Gram matrix.

    m1 = tr(g) / n_rows, m2 = ||g||_F^2 / n_rows; lambda_max exactly (see the module
    docstring). A g with NaN or infinite entries (or whose m2 overflows) gives a NaN
    lambda_max and non-finite m1 or m2.

    Parameters
    ----------
    g : numpy.ndarray
        float64 (p, p), C-ordered: J^T J or J J^T; destroyed.
    n_rows : int
        Rows of J (n_l): the number of squared singular values, zeros included.
    d, e, v, u : numpy.ndarray
        float64 scratch, each of length >= p.

    Returns
    -------
    tuple of three float
        (m1, m2, lambda_max).
    """
    p = g.shape[0]
    trace = 0.0
    frob = 0.0
    for i in range(p):
        trace += g[i, i]
        row = g[i]
        s = 0.0
        for j in range(p):
            s += row[j] * row[j]
        frob += s
    if not (np.isfinite(trace) and np.isfinite(frob)):
        return trace / n_rows, np.inf if np.isfinite(trace) else np.nan, np.nan
    _tridiagonalize(g, d, e, v, u)
    top = largest_eigenvalue(d[:p], e[:max(p - 1, 0)])
    return trace / n_rows, frob / n_rows, top


@numba.njit(cache=True)
def input_statistics(m1, m2, lam, sums, layer):
    """Add one input's (m1, spread m2 / m1^2 - 1, sqrt(lambda_max), m2) to a layer's sums.

    Parameters
    ----------
    m1, m2, lam : float
        The input's m1, m2 and lambda_max at this layer (:func:`gram_statistics`).
    sums : numpy.ndarray
        float64 (L, 4), updated in place; the spread added is NaN where m1 = 0 (an all-zero
        Jacobian) or m1^2 underflows (below SPREAD_MIN_M1_SQUARED).
    layer : int
        The layer, from 0.
    """
    spread = m2 / (m1 * m1) - 1.0 if m1 * m1 >= SPREAD_MIN_M1_SQUARED else np.nan
    sums[layer, 0] += m1
    sums[layer, 1] += spread
    sums[layer, 2] += math.sqrt(lam) if lam >= 0.0 else np.nan
    sums[layer, 3] += m2
