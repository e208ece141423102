"""Mean-field (infinite-width) theory of signal and gradient propagation.

Every Gaussian expectation is a Gauss-Legendre quadrature of the normal density on
[-12, 12] standard deviations, cut into pieces that grow by a factor 4 away from the
normal's centre and from the activation's kink, on the activation's own length scale.
Plain Gauss-Hermite with 100 nodes is off by 0.4% for E[relu(z)] (the kink)
and by 0.05 in E[erf(z)^2] at q = 100 (a step of width 1/sqrt(q) between two nodes); the
pieces bring both to about 1e-14.

The network maps follow the engines' conventions: q^l = ||z^l||^2 / n_l of the
pre-activations, g^l = ||delta^l||^2 / n_l of the back-propagated cotangent with
E[g^L] = 1, and q0 = ||x||^2 / n_0 (the input is not passed through phi).
"""
from __future__ import annotations

import math

import numpy as np

from .activations import Activation
from ._checks import check_real
from .network import Network

_CUT = 12.0  # standard deviations; the normal mass beyond is 4e-33
_NODES = 16  # Gauss-Legendre nodes per piece
_T, _W = np.polynomial.legendre.leggauss(_NODES)
# activations whose E[phi(z)^2] is exactly proportional to q: the q map is affine
_HOMOGENEOUS = ("linear", "relu", "leaky_relu")
_EXACT_ROWS = 256  # up to this many distinct input lengths, average the maps one by one
_FIRST_NODES, _MAX_NODES = 16, 256  # Chebyshev degrees tried for more (doubling)
_RTOL = 1e-12  # two successive degrees must agree this well
_CHUNK = 1024  # values per quadrature batch: memory stays O(_CHUNK x 300) whatever the depth

__all__ = ["gaussian_moments", "kernel_moments", "row_average", "variance_map", "gradient_map",
           "mean_field_maps", "jacobian_maps", "correlation_map", "fixed_point",
           "correlation_fixed_point", "critical_sigma_w2", "depth_scales"]


def _rule(kink: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nodes z and weights w, shape (m, k), with sum_j w_ij f(z_ij) ~ E[f(Z)], Z ~ N(0, 1).

    ``kink`` (m,) is where f may have a corner; ``scale`` (m,) is the length in z over
    which f changes there. The pieces grow by 4 away from the kink and from the normal's
    centre 0 (where the density changes over a length 1).
    """
    kink = np.asarray(kink, dtype=np.float64)[:, None]
    # a floor, so that q = inf still gets pieces: q > 1e308 is cut as q = 1e308 (a floor of
    # 1e-12 once cut q at 1e24, where E[tanh'(z)^2] ~ 0.53 / sqrt(q) needs pieces of 1/sqrt(q))
    scale = np.clip(np.asarray(scale, dtype=np.float64), 1e-154, 1.0)[:, None]
    levels = math.ceil(math.log(2 * _CUT / float(np.min(scale, initial=1.0)), 4))
    steps = 4.0 ** np.arange(levels + 1)
    edges = np.concatenate([kink - scale * steps, kink, kink + scale * steps,
                            np.broadcast_to(np.concatenate([-steps, [0.0], steps, [-_CUT, _CUT]]),
                                            (len(kink), 2 * levels + 5))], axis=1)
    edges = np.sort(np.clip(edges, -_CUT, _CUT), axis=1)
    mid = 0.5 * (edges[:, 1:] + edges[:, :-1])
    half = 0.5 * (edges[:, 1:] - edges[:, :-1])
    z = mid[..., None] + half[..., None] * _T
    w = half[..., None] * _W * np.exp(-0.5 * z * z)
    shape = (len(z), half.shape[1] * _NODES)
    z, w = z.reshape(shape), w.reshape(shape)
    return z, w / w.sum(axis=1, keepdims=True)


def _check_q(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError(f"q (a variance) must be finite and >= 0, got {q}")
    return q


def gaussian_moments(activation: "str | Activation",
                     q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """E[phi(z)], E[phi(z)^2] and E[phi'(z)^2] for z ~ N(0, q).

    ``q`` is a variance (float or array, >= 0; 0 means the limit q -> 0+); each result has
    the shape of ``q``.

    Parameters
    ----------
    activation : str or Activation
        The activation phi (a name of :data:`fastvar.ACTIVATION_NAMES`, or an Activation).
    q : float or array_like
        Variances q >= 0.

    Returns
    -------
    mean : numpy.ndarray
        E[phi(z)], shaped like ``q``.
    second : numpy.ndarray
        E[phi(z)^2].
    slope : numpy.ndarray
        E[phi'(z)^2].

    Raises
    ------
    ValueError
        An unknown activation, or a negative or non-finite q.

    Examples
    --------
    >>> from fastvar import theory
    >>> [round(float(m), 6) for m in theory.gaussian_moments("relu", 2.0)]
    [0.56419, 1.0, 0.5]
    """
    return _moments(Activation.parse(activation), _check_q(q))


def _moments(act: Activation, q: np.ndarray, fourth: bool = False) -> tuple[np.ndarray, ...]:
    """gaussian_moments without the checks, for q that may have overflowed to inf; with
    ``fourth``, E[phi'(z)^4] as a fourth value."""
    q = np.asarray(q, dtype=np.float64)
    flat = q.reshape(-1)
    out = np.empty((4, flat.size))
    for start in range(0, flat.size, _CHUNK):  # in batches: a deep network's q must not need
        part = flat[start:start + _CHUNK]      # O(L x 300) floats at once
        z, w = _rule(np.zeros(part.size), 1.0 / np.sqrt(np.maximum(part, 1.0)))
        with np.errstate(invalid="ignore", over="ignore"):
            # q = inf (an overflowed map) is taken as q = 1e300: phi' is then at its limit,
            # and phi of an infinite argument would be NaN
            x = np.sqrt(np.minimum(part, 1e300))[:, None] * z
            # at q = 0 take phi' in the limit q -> 0+: relu'(z)^2 averages to 1/2, not 0
            phi, dphi = act(x), act.derivative(np.where(x == 0.0, 1e-300 * z, x))
            slope = dphi * dphi
            out[:, start:start + _CHUNK] = (np.sum(w * phi, axis=1), np.sum(w * phi * phi, axis=1),
                                            np.sum(w * slope, axis=1),
                                            np.sum(w * slope * slope, axis=1))
    return tuple(m.reshape(q.shape)[()] for m in out[:4 if fourth else 3])


def kernel_moments(activation: "str | Activation",
                   q) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """E[phi(z)^2], E[phi(z)^4], d/dq E[phi(z)^2] and d^2/dq^2 E[phi(z)^2], z ~ N(0, q).

    What the finite-width theory (:mod:`fastvar.finite_width`) needs beyond
    :func:`gaussian_moments`. ``q`` is a variance > 0 (float or array); each result has its
    shape. With x = sqrt(q) z: d/dq E[phi(x)^2] = E[phi(x) phi'(x) z] / sqrt(q) (Stein), and
    d^2/dq^2 E[G(x)] = E[G(x) (z^4 - 6 z^2 + 3)] / (4 q^2) for G = phi^2 (the Hermite
    identity, no second derivative of phi needed); same quadrature as gaussian_moments.

    Parameters
    ----------
    activation : str or Activation
        The activation phi.
    q : float or array_like
        Variances q > 0.

    Returns
    -------
    second, fourth, d1, d2 : numpy.ndarray
        E[phi(z)^2], E[phi(z)^4], d/dq E[phi(z)^2], d^2/dq^2 E[phi(z)^2], each shaped like
        ``q``.
    """
    act, q = Activation.parse(activation), _check_q(q)
    flat = q.reshape(-1)
    out = np.empty((4, flat.size))
    for start in range(0, flat.size, _CHUNK):
        part = flat[start:start + _CHUNK]
        z, w = _rule(np.zeros(part.size), 1.0 / np.sqrt(np.maximum(part, 1.0)))
        root = np.sqrt(part)[:, None]
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            phi = act(root * z)
            square = phi * phi
            z2 = z * z
            out[:, start:start + _CHUNK] = (
                np.sum(w * square, axis=1), np.sum(w * square * square, axis=1),
                np.sum(w * phi * act.derivative(root * z) * z, axis=1) / root[:, 0],
                np.sum(w * square * (z2 * z2 - 6.0 * z2 + 3.0), axis=1) / (4.0 * part * part))
    out[2:, flat == 0.0] = np.nan  # derivatives at q = 0 are not resolved by the nodes
    return tuple(m.reshape(q.shape)[()] for m in out)


def _pair_moment(f, g, q: float, c: float) -> float:
    """E[f(u1) g(u2)] for (u1, u2) ~ N(0, q [[1, c], [c, 1]]), q > 0, -1 <= c <= 1."""
    root = math.sqrt(q)
    s = math.sqrt(max(0.0, 1.0 - c * c))
    if s * root < 1e-12:  # u2 = +-u1: a single Gaussian
        z1, w1 = _rule(np.zeros(1), np.array([1.0 / root]))
        return float(np.sum(w1 * f(root * z1) * g(math.copysign(root, c) * z1)))
    # the inner average over z2 still turns a corner around z1 = 0, over a width s / |c|
    z1, w1 = _rule(np.zeros(1), np.array([min(1.0 / root, s / max(abs(c), s))]))
    z1, w1 = z1[0], w1[0]
    # u2 = root (c z1 + s z2): the inner integral over z2 has its kink at z2 = -c z1 / s
    z2, w2 = _rule(-c * z1 / s, np.full(z1.size, 1.0 / (root * s)))
    inner = np.sum(w2 * g(root * (c * z1[:, None] + s * z2)), axis=1)
    return float(np.sum(w1 * f(root * z1) * inner))


def _check_net(net) -> Network:
    if not isinstance(net, Network):
        raise TypeError("net must be a fastvar.Network (e.g. fastvar.mlp(100, 10)), "
                        f"got {type(net).__name__}")
    return net


def _branch_variance(net: Network, q: np.ndarray) -> np.ndarray:
    """Variance of each unit of the normalized branch input N(h) when h has variance q:
    q / (q + eps) with a norm (1 for eps = 0: that is what N is for), q without."""
    if net.norm is None:
        return q
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(q), 1.0, q / (q + net.norm_eps))


def _q_maps(net: Network, q0: np.ndarray) -> np.ndarray:
    """q^l for each start q0[j], shape (L, m); inf from the layer where a start overflows.

    Layer 1 sees the input as it is: q^1 = sigma_w^2 q0 + sigma_b^2. A later layer's branch
    is sigma_w^2 E[phi(u)^2] + sigma_b^2 with u ~ N(0, Var N(h^{l-1})); a plain network's
    q^l is that branch, a residual stream's q^l = q^{l-1} + alpha^2 branch (the branch is
    uncorrelated with the stream it is added to: W^l is fresh and has mean 0).
    """
    act, sb2, alpha = net.activation_fn, net.bias_std ** 2, net.alpha
    sw2 = net.sigma_w2
    q = np.empty((net.depth, q0.size))
    with np.errstate(over="ignore"):
        q[0] = sw2[0] * q0 + sb2
    for l in range(1, net.depth):
        if np.isinf(q[l - 1]).all():  # overflowed (unbounded activations only): so do the rest
            q[l:] = np.inf
            break
        var = _branch_variance(net, q[l - 1])
        second = np.where(np.isinf(var), np.inf, _moments(act, var)[1])
        with np.errstate(over="ignore", invalid="ignore"):
            branch = sw2[l] * second + sb2
            q[l] = q[l - 1] + alpha * alpha * branch if alpha else branch
    return q


def _g_maps(net: Network, q: np.ndarray, q0: np.ndarray) -> np.ndarray:
    """E[g^l] for each column of the q maps ``q`` (L, m) started at ``q0`` (m,), shape (L, m),
    with E[g^L] = 1.

    Through layer l + 1 the gradient gains n_{l+1} Var(W) E[phi'(u)^2] (u as in the q map),
    divided by the norm's scale q^l + eps when there is a norm (its Jacobian is 1/r times a
    projection that removes one or two of n directions: nothing at infinite width); a
    residual stream adds that to the identity: 1 + alpha^2 (gain).

    Where an all-zero input (q0 = 0) keeps a layer's pre-activations exactly 0 in every
    network, the gain takes phi'(0)^2 itself (what every network computes: 0 for ReLU), not
    its limit q -> 0+; a q that underflowed to 0 keeps the limit.
    """
    act = net.activation_fn
    fan_out_var = np.asarray(net.widths[2:], dtype=np.float64) * net.weight_var[1:]
    var = _branch_variance(net, q[:-1])
    slope = _moments(act, var)[2]
    exactly_zero = (np.asarray(q0) == 0.0) & (np.cumprod(var == 0.0, axis=0) == 1)
    slope = np.where(exactly_zero, float(act.derivative(0.0)) ** 2, slope)
    gain = fan_out_var[:, None] * slope
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        if net.norm is not None:
            gain = gain / (q[:-1] + net.norm_eps)
        factors = 1.0 + net.alpha ** 2 * gain if net.alpha else gain
        g = np.cumprod(factors[::-1], axis=0)[::-1]
    return np.concatenate([g, np.ones((1, q.shape[1]))])


def _maps(net: Network, q0: np.ndarray, gradients: bool) -> list[np.ndarray]:
    """[q maps] or [q maps, g maps] started at each q0[j], each of shape (L, m)."""
    q = _q_maps(net, q0)
    return [q, _g_maps(net, q, q0)] if gradients else [q]


def _rows(q0, counts) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct input lengths and their shares of the rows (summing to 1)."""
    if np.ndim(q0) == 0 and counts is None:
        return np.array([check_real("q0", q0, 0.0, strict=False)]), np.ones(1)
    values = np.asarray(q0, dtype=np.float64).reshape(-1)
    if np.ndim(q0) != 1 or values.size == 0 or not np.all(np.isfinite(values)) \
            or np.any(values < 0):
        raise ValueError("q0 must be a number or a 1-D array of finite input lengths >= 0 "
                         f"(one per data-set row), got {q0!r}")
    if counts is None:
        counts = np.ones(values.size)
    counts = np.asarray(counts, dtype=np.float64)
    if counts.shape != values.shape or not np.all(np.isfinite(counts)) or np.any(counts <= 0):
        raise ValueError(f"counts must hold one positive number per q0 value ({values.size}), "
                         f"got {counts!r}")
    values, where = np.unique(values, return_inverse=True)
    share = np.bincount(where.reshape(-1), weights=counts, minlength=values.size)
    return values, share / share.sum()


def _chebyshev_weights(mu: np.ndarray) -> np.ndarray:
    """w (n+1,): sum_j w_j f(cos(pi j / n)) = sum_i share_i p(x_i), where p is the degree-n
    interpolant of f at those Chebyshev-Lobatto points and mu_k = sum_i share_i T_k(x_i)."""
    n = mu.size - 1
    ends = np.ones(n + 1)
    ends[[0, -1]] = 0.5  # the halved first and last terms of both Chebyshev sums
    cosines = np.cos(np.pi * np.outer(np.arange(n + 1), np.arange(n + 1)) / n)
    return (2.0 / n) * ends * ((ends * mu) @ cosines)


def _interpolated(maps_of, values: np.ndarray,
                  share: np.ndarray) -> "list[np.ndarray] | None":
    """Share-weighted sums of the maps over ``values`` (> 0, sorted) by Chebyshev
    interpolation in log q0, doubling the degree until two agree to _RTOL (convergence is
    geometric, so the last is far better than that); None if that fails by _MAX_NODES."""
    lo, hi = math.log(values[0]), math.log(values[-1])
    x = np.clip((2.0 * np.log(values) - lo - hi) / (hi - lo), -1.0, 1.0)
    mu = [share.sum()]  # mu_k = sum_i share_i T_k(x_i), by the stable recurrence on [-1, 1]
    t_prev, t = np.ones_like(x), x
    before, n = None, _FIRST_NODES
    while n <= _MAX_NODES:
        nodes = np.exp(lo + (hi - lo) * 0.5 * (1.0 + np.cos(np.pi * np.arange(n + 1) / n)))
        nodes[[0, -1]] = values[-1], values[0]
        with np.errstate(invalid="ignore"):
            maps = maps_of(nodes)
        if not all(np.isfinite(m).all() for m in maps):
            return None  # a start overflows: not smooth there
        while len(mu) <= n:
            mu.append(share @ t)
            t_prev, t = t, 2.0 * x * t - t_prev
        w = _chebyshev_weights(np.array(mu[:n + 1]))
        now = [m @ w for m in maps]
        if before is not None and all(np.all(np.abs(a - b) <= _RTOL * np.abs(a))
                                      for a, b in zip(now, before)):
            return now
        before, n = now, 2 * n
    return None


def _row_sums(maps_of, values: np.ndarray, share: np.ndarray) -> list[np.ndarray]:
    """Share-weighted sums of ``maps_of(values)`` (a list of (L, m) arrays, one column per
    start) over ``values`` (sorted, distinct)."""
    if values.size <= _EXACT_ROWS:
        return [m @ share for m in maps_of(values)]
    if values[0] == 0.0:  # log q0 needs q0 > 0: a zero length is a point of its own
        return [a + b for a, b in zip(_row_sums(maps_of, values[:1], share[:1]),
                                      _row_sums(maps_of, values[1:], share[1:]))]
    lo, hi = math.log(values[0]), math.log(values[-1])
    if hi - lo < 1e-12:  # lengths equal to 12 digits: the curvature's effect is ~1e-24
        return [m[:, 0] * share.sum()
                for m in maps_of(np.array([share @ values / share.sum()]))]
    found = _interpolated(maps_of, values, share)
    if found is not None:
        return found
    # deep compositions of curved maps (e.g. gelu through 20 layers) can need more nodes
    # than _MAX_NODES over a wide range: halve the range in log q0 and try each half
    cut = int(np.searchsorted(values, math.exp(0.5 * (lo + hi))))
    cut = min(max(cut, 1), values.size - 1)
    return [a + b for a, b in zip(_row_sums(maps_of, values[:cut], share[:cut]),
                                  _row_sums(maps_of, values[cut:], share[cut:]))]


def _row_average(net: Network, q0, counts, gradients: bool) -> list[np.ndarray]:
    """The maps averaged over data-set rows with input lengths ``q0`` (see variance_map)."""
    net = _check_net(net)
    values, share = _rows(q0, counts)
    if values.size == 1 or (net.activation_fn.name in _HOMOGENEOUS and net.norm is None):
        # homogeneous activations: E[phi(z)^2] is proportional to q and E[phi'(z)^2] does not
        # depend on q, so every map is affine in q0 and its row average is the map of the mean
        return [m[:, 0] for m in _maps(net, np.array([share @ values]), gradients)]
    return _row_sums(lambda starts: _maps(net, starts, gradients), values, share)


def row_average(maps_of, q0, counts=None) -> list[np.ndarray]:
    """The average over data-set rows of per-row maps, as :func:`variance_map` averages its
    own (exactly up to 256 distinct lengths, else by Chebyshev interpolation in log q0).

    ``maps_of`` takes the input lengths q0 (m,) and returns a list of arrays of shape
    (L, m), one column per length, smooth in log q0 where q0 > 0; ``q0`` and ``counts`` as
    in :func:`variance_map`. Returns the count-weighted averages, each of shape (L,).

    Parameters
    ----------
    maps_of : callable
        q0 of shape (m,) -> list of arrays of shape (L, m).
    q0 : float or array_like
        The rows' lengths ||x_i||^2 / n_0, >= 0.
    counts : array_like or None
        Rows with each length (default: one each).

    Returns
    -------
    list of numpy.ndarray
        The count-weighted averages over rows, each of shape (L,).
    """
    values, share = _rows(q0, counts)
    return _row_sums(maps_of, values, share)


def variance_map(net: Network, q0: "float | np.ndarray" = 1.0,
                 counts: "np.ndarray | None" = None) -> np.ndarray:
    """Infinite-width q^l = E||z^l||^2 / n_l for l = 1..L, shape (L,).

    ``q0`` is the mean squared input entry ||x||^2 / n_0 (dimensionless, >= 0). Each layer
    uses its own sigma_w^2 = n_{l-1} Var(W^l_ij) (``net.sigma_w2``) and the bias variance
    bias_std^2.

    For a data set, pass ``q0`` as a 1-D array of the rows' lengths ||x_i||^2 / n_0 (and
    optionally ``counts``, the number of rows with each value): the result is the average
    over rows of the maps started at each row's own q0, which is what a simulation drawing
    rows at random measures. It differs from the map of the mean length where the map is
    curved (tanh, erf, ...; Jensen) and equals it for linear, ReLU and leaky ReLU.
    Computed to about 1e-12 relative: exactly on up to 256 distinct lengths, otherwise by
    Chebyshev interpolation in log q0, adaptive in degree and range (100 000 distinct rows
    take about a second at depth 20).

    Parameters
    ----------
    net : Network
        The network (L layers).
    q0 : float or array_like
        The input's mean squared entry, or a data set's rows' ones (shape (m,)), >= 0.
    counts : array_like or None
        With an array ``q0``: the rows with each length (default: one each).

    Returns
    -------
    numpy.ndarray
        q^1 .. q^L, shape (L,), in the units of z^2.

    Examples
    --------
    >>> import fastvar
    >>> fastvar.theory.variance_map(fastvar.mlp(100, 3, activation="relu", init="he"))
    array([2., 2., 2.])
    """
    return _row_average(net, q0, counts, gradients=False)[0]


def gradient_map(net: Network, q0: "float | np.ndarray" = 1.0,
                 counts: "np.ndarray | None" = None) -> np.ndarray:
    """Infinite-width E[g^l] = E||delta^l||^2 / n_l for l = 1..L, shape (L,), with E[g^L] = 1.

    E[g^{l-1}] = n_l Var(W^l_ij) E[phi'(z^{l-1})^2] E[g^l]: the backward gain uses the
    fan-out n_l, so on unequal widths it differs from ``net.sigma_w2``. ``q0`` and
    ``counts`` as in :func:`variance_map`: for a data set, the row average of the maps.

    Parameters
    ----------
    net : Network
        The network (L layers).
    q0 : float or array_like
        As in :func:`variance_map`.
    counts : array_like or None
        As in :func:`variance_map`.

    Returns
    -------
    numpy.ndarray
        E[g^1] .. E[g^L], shape (L,), relative to the output cotangent's E[g^L] = 1.
    """
    return _row_average(net, q0, counts, gradients=True)[1]


def mean_field_maps(net: Network, q0: "float | np.ndarray" = 1.0,
                    counts: "np.ndarray | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`variance_map` and :func:`gradient_map` of the same arguments, computed together.

    Parameters
    ----------
    net : Network
        The network (L layers).
    q0 : float or array_like
        As in :func:`variance_map`.
    counts : array_like or None
        As in :func:`variance_map`.

    Returns
    -------
    q : numpy.ndarray
        q^l, shape (L,).
    g : numpy.ndarray
        E[g^l], shape (L,).
    """
    q, g = _row_average(net, q0, counts, gradients=True)
    return q, g


def jacobian_maps(net: Network, q0: "float | np.ndarray" = 1.0,
                  counts: "np.ndarray | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """Infinite-width spectrum of the input-output Jacobian J^l = D^l W^l ... D^1 W^1:
    (m1, spread) for l = 1..L, each of shape (L,).

    With mu_k(q) = E[phi'(sqrt(q) h)^(2k)], h ~ N(0, 1), and q^k the mean-field length at
    layer k (:func:`variance_map`, the transient before any fixed point included):

    * m1^l = prod_{k<=l} sigma_w^2 mu_1(q^k), the mean squared singular value, for iid and
      orthogonal weights on any widths (sigma_w^2 = n_{k-1} Var(W^k_ij), ``net.sigma_w2``);
    * spread^l = m2 / m1^2 - 1 = sum_{k<=l} [-s1 + mu_2(q^k) / mu_1(q^k)^2 - 1], the
      normalized variance of the squared singular values: normalized variances add over
      freely multiplied factors (free probability; Pennington, Schoenholz and Ganguli
      2018), with s1 = -1 for iid weights (normal, uniform, truncated normal: the same
      limit) and s1 = 0 for orthogonal ones. Linear: l (Gaussian; Fuss-Catalan m2 = l + 1)
      and 0 (orthogonal); ReLU: 2 l and l. Only for equal widths n_0 = n_1 = ... = n_L
      (NaN otherwise: the factors are then rectangular).

    Parameters
    ----------
    net : Network
        A plain network (no residual stream, no norm: ValueError).
    q0 : float or numpy.ndarray
        The mean squared input entry, or a data set's row lengths (the average over rows
        of each row's maps), as in :func:`variance_map`.
    counts : numpy.ndarray or None
        Rows with each q0 value, as in :func:`variance_map`.

    Returns
    -------
    tuple of two numpy.ndarray
        (m1, spread), each of shape (L,).
    """
    net = _check_net(net)
    if net.alpha or net.norm is not None:
        raise ValueError("jacobian_maps covers plain networks (no residual stream, no norm)")
    s1 = 0.0 if net.init == "orthogonal" else -1.0
    equal = len(set(net.widths)) == 1
    act, sw2 = net.activation_fn, net.sigma_w2[:, None]

    def maps_of(starts: np.ndarray) -> list[np.ndarray]:
        q = _q_maps(net, starts)
        mu1, mu2 = _moments(act, q, fourth=True)[2:]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            m1 = np.cumprod(sw2 * mu1, axis=0)
            excess = mu2 / (mu1 * mu1) - 1.0
            # where phi' is constant (linear) the excess is 0: drop the quadrature's rounding,
            # or an exact isometry (linear, orthogonal) would read -2e-16 from its theory
            excess = np.where(np.abs(excess) < 1e-12, 0.0, excess)
            spread = np.cumsum(-s1 + excess, axis=0)
        return [m1, spread if equal else np.full_like(m1, np.nan)]

    values, share = _rows(q0, counts)
    m1, spread = _row_sums(maps_of, values, share)
    return m1, spread


def correlation_map(net: Network, c0: float, q0: float = 1.0) -> np.ndarray:
    """Infinite-width correlation c^l = <z^l, z'^l> / (||z^l|| ||z'^l||) for l = 1..L, shape (L,).

    The two inputs both have mean squared entry ``q0`` > 0 and correlation ``c0`` in [-1, 1].
    With a norm the branch sees each input normalized (the cosine is unchanged, the
    variance q / (q + eps)); a residual stream adds alpha^2 times the branch covariance to
    the stream's, as for q.

    Parameters
    ----------
    net : Network
        The network (L layers).
    c0 : float
        The inputs' correlation, in [-1, 1].
    q0 : float
        Their mean squared entry, > 0.

    Returns
    -------
    numpy.ndarray
        c^1 .. c^L, shape (L,), each in [-1, 1].
    """
    q0 = check_real("q0", q0, 0.0, strict=True)  # both inputs: one length (not a data set)
    q = variance_map(net, q0)
    c0 = check_real("c0", c0, -1.0, strict=False)
    if c0 > 1.0:
        raise ValueError(f"c0 is a correlation and must be in [-1, 1], got {c0!r}")
    act, sb2, alpha = net.activation_fn, net.bias_std ** 2, net.alpha
    c = np.empty(net.depth)
    cov = net.sigma_w2[0] * c0 * q0 + sb2  # E[h_j h'_j] at layer 1: the inputs as they are
    for l, sw2 in enumerate(net.sigma_w2):
        if not 0.0 < q[l] < np.inf:  # q overflowed or underflowed: no direction to speak of
            c[l:] = np.nan
            break
        if l > 0:  # the branch's covariance, from the (normalized) pair of layer l - 1
            var = float(_branch_variance(net, np.array(q[l - 1])))
            with np.errstate(over="ignore", invalid="ignore"):
                branch = sw2 * _pair_moment(act, act, var, c[l - 1]) + sb2
            cov = cov + alpha * alpha * branch if alpha else branch
        c[l] = min(1.0, max(-1.0, cov / q[l])) if np.isfinite(cov) else np.nan
    return c


def _check_gains(activation, sigma_w2, sigma_b2) -> tuple[Activation, float, float]:
    return (Activation.parse(activation), check_real("sigma_w2", sigma_w2, 0.0, strict=True),
            check_real("sigma_b2", sigma_b2, 0.0, strict=False))


# sup |phi| of the bounded activations: their map always has a fixed point
_BOUNDS = {"tanh": 1.0, "erf": 1.0, "sigmoid": 1.0}


def fixed_point(activation: "str | Activation", sigma_w2: float, sigma_b2: float,
                q0: float = 1.0) -> tuple[float, float]:
    """(q*, chi_1): the fixed point of q -> sigma_w2 E[phi(z)^2] + sigma_b2 reached from ``q0``.

    chi_1 = sigma_w2 E[phi'(z)^2] at z ~ N(0, q*): below 1 the network is ordered (nearby
    inputs converge), above 1 chaotic. Where every q is fixed (ReLU with sigma_w2 = 2 and
    no bias) q* = q0. Raises ValueError when q grows without bound.

    Parameters
    ----------
    activation : str or Activation
        The activation phi.
    sigma_w2 : float
        Weight variance times fan-in, > 0.
    sigma_b2 : float
        Bias variance, >= 0.
    q0 : float
        Where the iteration starts (the input's mean squared entry).

    Returns
    -------
    q_star : float
        The fixed point q*.
    chi_1 : float
        sigma_w2 E[phi'(z)^2] at z ~ N(0, q*).

    Raises
    ------
    ValueError
        q grows without bound, or an argument out of range.

    Examples
    --------
    >>> from fastvar import theory
    >>> [round(x, 6) for x in theory.fixed_point("relu", 2.0, 0.0)]
    [1.0, 1.0]
    """
    act, sw2, sb2 = _check_gains(activation, sigma_w2, sigma_b2)
    q0 = check_real("q0", q0, 0.0, strict=False)

    def chi(q):
        return float(sw2 * gaussian_moments(act, q)[2])

    if act.name in _HOMOGENEOUS:
        slope = float(sw2 * gaussian_moments(act, 1.0)[1])
        if slope < 1.0 - 1e-12:
            return sb2 / (1.0 - slope), chi(1.0)
        if slope <= 1.0 + 1e-12 and sb2 == 0.0:
            return q0, chi(1.0)
        limit = 1.0 / float(gaussian_moments(act, 1.0)[1])
        raise ValueError(
            f"no fixed point: for {act.label} q^l grows without bound when sigma_w2 = {sw2:g}"
            f"{' and sigma_b2 > 0' if slope <= 1.0 + 1e-12 else ''}; use sigma_w2 < {limit:g}"
        )

    def excess(q):  # > 0 where the map pushes q up
        return float(sw2 * gaussian_moments(act, q)[1] + sb2 - q)

    if excess(q0) == 0.0:
        return q0, chi(q0)
    if excess(q0) < 0.0:
        lo, hi = 0.0, q0  # excess(0) >= 0
    else:
        lo, hi = q0, max(2.0 * q0, 1.0)
        # a bounded phi (|phi| <= b) keeps q below sigma_w2 b^2 + sigma_b2, however large
        bound = _BOUNDS.get(act.name)
        ceiling = 1e15 if bound is None else max(1e15, 4.0 * (sw2 * bound ** 2 + sb2))
        while excess(hi) >= 0.0:
            lo, hi = hi, 2.0 * hi
            if hi > ceiling:
                raise ValueError(
                    f"no fixed point: for {act.label} q^l grows without bound at "
                    f"sigma_w2 = {sw2:g}, "
                    f"sigma_b2 = {sb2:g}; lower sigma_w2"
                )
    # bisect for the crossing from above to below the diagonal: the stable fixed point
    while hi - lo > 1e-15 * hi and hi > 1e-30 * max(q0, 1.0):  # q* = 0 is reached geometrically
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) >= 0.0 else (lo, mid)
    q_star = 0.5 * (lo + hi)
    return q_star, chi(q_star)


def correlation_fixed_point(activation: "str | Activation", sigma_w2: float,
                            sigma_b2: float) -> tuple[float, float]:
    """(c*, chi_c): the stable fixed point of the correlation map and its slope there.

    The map is c -> (sigma_w2 E[phi(u) phi(v)] + sigma_b2) / q* with (u, v) Gaussian of
    variance q* (the length fixed point, :func:`fixed_point`) and correlation c. In the
    ordered phase and on the critical line (chi_1 <= 1) c* = 1 and chi_c = chi_1; in the
    chaotic phase c* < 1 and chi_c = sigma_w2 E[phi'(u) phi'(v)] at c* (< 1: correlations
    still converge, to a value below 1). chi_c < 1 means c^l approaches c* geometrically,
    ``|c^l - c*| ~ chi_c^l``. Where the signal vanishes (q* = 0, e.g. ReLU or tanh with
    sigma_w2 below critical and no bias) the map near c = 1 does not depend on the scale
    and its slope at c* = 1 is 1. Raises ValueError where there is no q*.

    Parameters
    ----------
    activation : str or Activation
        The activation phi.
    sigma_w2 : float
        Weight variance times fan-in, > 0.
    sigma_b2 : float
        Bias variance, >= 0.

    Returns
    -------
    c_star : float
        The stable fixed point c*, in [-1, 1].
    chi_c : float
        The map's slope there.

    Raises
    ------
    ValueError
        There is no q* (q grows without bound).
    """
    act, sw2, sb2 = _check_gains(activation, sigma_w2, sigma_b2)
    q_star, chi_1 = fixed_point(act, sw2, sb2)
    if q_star == 0.0:
        return 1.0, 1.0
    if chi_1 <= 1.0:
        return 1.0, chi_1

    def excess(c):
        return (sw2 * _pair_moment(act, act, q_star, c) + sb2) / q_star - c

    lo, hi = -1.0, 1.0 - 1e-6  # excess(-1) >= 0 by Cauchy-Schwarz; < 0 just below c = 1
    if excess(hi) >= 0.0:  # barely chaotic: the fixed point lies within 1e-6 of 1
        return 1.0, chi_1
    while hi - lo > 1e-13:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if excess(mid) >= 0.0 else (lo, mid)
    c_star = 0.5 * (lo + hi)
    return c_star, sw2 * _pair_moment(act.derivative, act.derivative, q_star, c_star)


def _chaotic(act: Activation, sw2: float, sb2: float) -> bool:
    try:
        return fixed_point(act, sw2, sb2)[1] >= 1.0
    except ValueError:  # q blows up: past the edge of chaos as well
        return True


def critical_sigma_w2(activation: "str | Activation", sigma_b2: float = 0.0) -> float:
    """sigma_w^2 on the order-to-chaos line, where chi_1 = 1 at the fixed point q*.

    For ReLU this is 2 (He), for linear 1, for tanh with sigma_b2 = 0 also 1.
    Raises ValueError if chi_1 stays below 1 up to sigma_w2 = 1e6.

    Parameters
    ----------
    activation : str or Activation
        The activation phi.
    sigma_b2 : float
        Bias variance, >= 0.

    Returns
    -------
    float
        The critical sigma_w^2.

    Raises
    ------
    ValueError
        chi_1 stays below 1 up to sigma_w2 = 1e6.

    Examples
    --------
    >>> from fastvar import theory
    >>> round(theory.critical_sigma_w2("relu"), 6)
    2.0
    """
    act, _, sb2 = _check_gains(activation, 1.0, sigma_b2)
    lo, hi = 0.0, 1.0
    while not _chaotic(act, hi, sb2):
        lo, hi = hi, 2.0 * hi
        if hi > 1e6:
            raise ValueError(f"chi_1 stays below 1 for {act.label} with sigma_b2 = {sb2:g} "
                             "up to sigma_w2 = 1e6")
    while hi - lo > 1e-13 * hi:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if not _chaotic(act, mid, sb2) else (lo, mid)
    return 0.5 * (lo + hi)


def depth_from_rate(rate: float) -> float:
    """The number of layers over which rate^l falls by a factor e: -1 / log(rate).

    Parameters
    ----------
    rate : float
        A per-layer factor in (0, 1] (1 gives an infinite depth).

    Returns
    -------
    float
        The depth scale in layers.
    """
    return -1.0 / math.log(rate) if rate < 1.0 - 1e-12 else math.inf


def depth_scales(activation: "str | Activation", sigma_w2: float,
                 sigma_b2: float) -> tuple[float, float]:
    """(xi_q, xi_c): depths over which q^l and the correlation c^l approach their fixed points.

    ``|q^l - q*| ~ exp(-l / xi_q)`` and ``|c^l - c*| ~ exp(-l / xi_c)`` (Schoenholz et al. 2017);
    xi_c = -1 / log(chi_c) with chi_c from :func:`correlation_fixed_point`; it is infinite
    on the order-to-chaos line. Raises ValueError where there is no q*.

    Parameters
    ----------
    activation : str or Activation
        The activation phi.
    sigma_w2 : float
        Weight variance times fan-in, > 0.
    sigma_b2 : float
        Bias variance, >= 0.

    Returns
    -------
    xi_q : float
        Depth scale of q^l, in layers.
    xi_c : float
        Depth scale of c^l, in layers (infinite on the critical line).

    Raises
    ------
    ValueError
        There is no q*.
    """
    act, sw2, sb2 = _check_gains(activation, sigma_w2, sigma_b2)
    chi_c = correlation_fixed_point(act, sw2, sb2)[1]
    return q_depth_scale(act, sw2, sb2), depth_from_rate(chi_c)


def q_depth_scale(act: Activation, sw2: float, sb2: float) -> float:
    """xi_q of :func:`depth_scales` alone (without the correlation's fixed point, which
    costs most), for callers that have chi_c already.

    Parameters
    ----------
    act : Activation
        The activation phi.
    sw2 : float
        sigma_w^2.
    sb2 : float
        sigma_b^2.

    Returns
    -------
    float
        xi_q in layers.
    """
    q_star = fixed_point(act, sw2, sb2)[0]
    # slope of the q map at q*: d/dq E[phi(sqrt(q) z)^2] = E[phi(x) phi'(x) x] / q
    q = max(q_star, 1e-30)
    z, w = _rule(np.zeros(1), np.array([1.0 / max(math.sqrt(q), 1.0)]))
    x = math.sqrt(q) * z[0]
    slope = sw2 * float(np.sum(w[0] * act(x) * act.derivative(x) * x)) / q
    return depth_from_rate(slope)
