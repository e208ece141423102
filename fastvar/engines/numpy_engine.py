"""The NumPy reference engine: brute force, vectorized over the networks of a block.

This is the specification the Numba engines are tested against and the baseline they
are benchmarked against. Every network draws all its weights; each block uses its own
``numpy.random.Generator`` seeded from (seed, block).
"""
from __future__ import annotations

import numpy as np

from ..kernels.accumulators import (A, DELTA, HIST_BINS, HIST_QUANTITIES, HIST_SLOTS, LINK, NET,
                                   Z, add_jacobian, add_links, add_network_level, add_networks,
                                   new_stats, store_histograms)
from ..kernels.codes import INPUTS_NORMAL, INPUTS_PAIR, INPUTS_ROW_PAIR, TRUNC_STD
from ..kernels.jacobian import SPREAD_MIN_M1_SQUARED
from . import costs
from .base import Engine, Plan, histogram_factor, jacobian_work, networks_per_block, register


def draw_weights(rng: np.random.Generator, plan: Plan, layer: int, count: int) -> np.ndarray:
    """The weights W^layer of ``count`` networks.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's generator.
    plan : Plan
        The request.
    layer : int
        1 to L.
    count : int
        Networks.

    Returns
    -------
    numpy.ndarray
        Shape (count, n_layer, n_{layer-1}).
    """
    net = plan.network
    n, m = net.widths[layer], net.widths[layer - 1]
    var = net.weight_var[layer - 1]
    if net.init == "orthogonal":
        q, r = np.linalg.qr(rng.standard_normal((count, max(n, m), min(n, m))))
        q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]  # Haar, not QR's bias
        return net.gain * (q if n >= m else q.transpose(0, 2, 1))
    if net.distribution == "uniform":
        bound = np.sqrt(3.0 * var)
        return rng.uniform(-bound, bound, (count, n, m))
    w = rng.standard_normal((count, n, m))
    if net.distribution == "truncated_normal":
        outside = np.abs(w) > 2.0
        while outside.any():
            w[outside] = rng.standard_normal(outside.sum())
            outside = np.abs(w) > 2.0
        return w * (np.sqrt(var) / TRUNC_STD)
    return w * np.sqrt(var)


def draw_inputs(rng: np.random.Generator, plan: Plan, count: int) -> np.ndarray:
    """The inputs of ``count`` networks.

    Parameters
    ----------
    rng : numpy.random.Generator
        The block's generator.
    plan : Plan
        The request (its inputs kind, data and pairs' c0).
    count : int
        Networks.

    Returns
    -------
    numpy.ndarray
        Shape (count, k, n_0), k = inputs per network.
    """
    k, n0 = plan.inputs_per_network, plan.network.widths[0]
    if plan.inputs_kind == INPUTS_NORMAL:
        return rng.standard_normal((count, k, n0))
    if plan.inputs_kind == INPUTS_PAIR:
        x = rng.standard_normal((count, 2, n0))
        c0 = plan.correlation
        x[:, 1] = c0 * x[:, 0] + np.sqrt(1.0 - c0 * c0) * x[:, 1]
        return x
    rows = plan.data.shape[0]
    if plan.inputs_kind == INPUTS_ROW_PAIR:  # two distinct rows, uniformly
        first = rng.integers(0, rows, count)
        second = rng.integers(0, rows - 1, count)
        second += second >= first
        return plan.data[np.stack([first, second], axis=1)]
    return plan.data[rng.integers(0, rows, (count, k))]


def normalize(h: np.ndarray, norm: "str | None", eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(N(h), r) over the last axis: LayerNorm ("layer": centre, then divide by the root
    mean square r) or RMSNorm ("rms": divide by r); eps is added inside the root. A vector
    that is all zero (a dead layer) stays zero: r = inf there, so N(h) = 0 and N' = 0.

    Parameters
    ----------
    h : numpy.ndarray
        Values, normalized over the last axis.
    norm : {"layer", "rms"} or None
        The norm (None: h unchanged, r = 1).
    eps : float
        Added inside the root.

    Returns
    -------
    y : numpy.ndarray
        N(h), the shape of ``h``.
    r : numpy.ndarray
        The root mean square, the shape of ``h`` less its last axis (kept as size 1).
    """
    if norm is None:
        return h, np.ones(h.shape[:-1] + (1,))
    c = h - h.mean(axis=-1, keepdims=True) if norm == "layer" else h
    r = np.sqrt(np.mean(c * c, axis=-1, keepdims=True) + eps)
    r = np.where(r > 0, r, np.inf)
    return c / r, r


def normalize_backward(v: np.ndarray, y: np.ndarray, r: np.ndarray,
                       norm: "str | None") -> np.ndarray:
    """The gradient through a norm: J_N(h)^T v for y = N(h) with scale r (see :func:`normalize`).

    Parameters
    ----------
    v : numpy.ndarray
        Cotangent of y.
    y : numpy.ndarray
        N(h).
    r : numpy.ndarray
        Its scale, as :func:`normalize` returns it.
    norm : {"layer", "rms"} or None
        The norm.

    Returns
    -------
    numpy.ndarray
        Cotangent of h, the shape of ``v``.
    """
    if norm is None:
        return v
    if norm == "layer":
        v = v - v.mean(axis=-1, keepdims=True)
    return (v - y * np.mean(y * v, axis=-1, keepdims=True)) / r


def count_histogram(values: np.ndarray, factor: float) -> np.ndarray:
    """Counts (HIST_SLOTS,) of the finite ``values``: slot floor(x * factor + HIST_BINS / 2)
    + 1, 0 below the bins, HIST_SLOTS - 1 above (as the kernels' ``add_histogram``).

    Parameters
    ----------
    values : numpy.ndarray
        Any shape; NaN and infinities are not counted.
    factor : float
        Slots per value unit.

    Returns
    -------
    numpy.ndarray
        int64 counts, shape (HIST_SLOTS,).
    """
    x = values[np.isfinite(values)]
    y = np.clip(x * factor + HIST_BINS / 2.0, -1.0, float(HIST_BINS))
    return np.bincount((np.floor(y) + 1.0).astype(np.int64), minlength=HIST_SLOTS)


def run_block(plan: Plan, block: int, stats: np.ndarray) -> None:
    """Simulate one block of a plan and add it to ``stats``.

    Parameters
    ----------
    plan : Plan
        The request.
    block : int
        The block, seeding its generator with (seed, block).
    stats : numpy.ndarray
        Stats to add to, shape (L, plan.stats_rows, S), changed in place.
    """
    net = plan.network
    factor = histogram_factor(plan)
    hist = np.zeros((factor.shape[0], HIST_QUANTITIES, HIST_SLOTS), dtype=np.int64)
    rng = np.random.default_rng([plan.seed, block])
    count = plan.block_networks(block)
    a = draw_inputs(rng, plan, count)
    phi = net.activation_fn
    alpha, norm = net.alpha, net.norm
    lengths = np.empty(count)
    cos = np.full(count, np.nan)
    if plan.pairs:
        x, y = a[:, 0], a[:, 1]  # c^0: the inputs' own cosine
        cos = np.sum(x * y, axis=1) / np.sqrt(np.sum(x * x, axis=1) * np.sum(y * y, axis=1))
    weights, normalized = [], []
    h = None  # the residual stream, from layer 1 on
    for layer in range(1, net.depth + 1):
        w = draw_weights(rng, plan, layer, count)
        z = a @ w.transpose(0, 2, 1)
        if net.bias_std > 0.0:
            z += net.bias_std * rng.standard_normal((count, 1, net.widths[layer]))
        if alpha and layer > 1:  # the residual stream h^l = h^{l-1} + alpha (branch)
            z = h + alpha * z
        h = z
        y, r = normalize(h, norm, net.norm_eps)
        a = phi(y)
        add_networks(stats[layer - 1, Z], h, lengths)
        add_networks(stats[layer - 1, A], a, lengths)
        add_network_level(stats[layer - 1, NET], h, a, lengths, cos, plan.pairs)
        if plan.histograms:
            hist[layer - 1, Z] += count_histogram(h, factor[layer - 1, Z])
            hist[layer - 1, A] += count_histogram(a, factor[layer - 1, A])
        weights.append(w)
        normalized.append((y, r))
    if plan.gradients:
        _backward(plan, rng, count, weights, normalized, stats, hist, factor)
    if plan.jacobian:
        _jacobian(plan, weights, normalized, stats)
    if plan.histograms:
        store_histograms(stats, hist)


def _backward(plan: Plan, rng: np.random.Generator, count: int, weights: list,
              normalized: list, stats: np.ndarray, hist: np.ndarray, factor: np.ndarray) -> None:
    """The backward pass of :func:`run_block` from a random read-out's cotangent."""
    net, k = plan.network, plan.inputs_per_network
    phi, alpha, norm = net.activation_fn, net.alpha, net.norm
    lengths = np.empty(count)
    delta = rng.standard_normal((count, k, net.widths[-1]))  # dL/dh^L of a random read-out
    upper = np.empty(count)
    for layer in range(net.depth, 0, -1):
        add_networks(stats[layer - 1, DELTA], delta, lengths)
        if plan.histograms:
            hist[layer - 1, DELTA] += count_histogram(delta, factor[layer - 1, DELTA])
        if layer < net.depth:
            add_links(stats[layer - 1, LINK], upper, lengths)
        upper[:] = lengths
        if layer > 1:
            y, r = normalized[layer - 2]
            branch = (delta @ weights[layer - 1]) * phi.derivative(y)
            branch = normalize_backward(branch, y, r, norm)
            delta = delta + alpha * branch if alpha else branch


def spectrum_statistics(jt: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
    """Spectrum statistics of the squared singular values of Jacobians.

    From the smaller Gram matrix (``numpy.linalg.eigvalsh`` for lambda_max).

    Parameters
    ----------
    jt : numpy.ndarray
        Transposed Jacobians, shape (..., n_0, n).
    n : int
        Rows of each J (n_l).

    Returns
    -------
    tuple of four numpy.ndarray
        (m1, spread m2 / m1^2 - 1, sqrt(lambda_max), m2), each of shape ``jt.shape[:-2]``;
        NaN lambda_max where J is not finite, a NaN spread where m1 = 0 or m1^2 underflows.
    """
    gram = jt @ jt.swapaxes(-1, -2) if jt.shape[-2] <= n else jt.swapaxes(-1, -2) @ jt
    m1 = np.trace(gram, axis1=-2, axis2=-1) / n
    m2 = np.sum(gram * gram, axis=(-2, -1)) / n
    finite = np.isfinite(m1) & np.isfinite(m2)
    top = np.full(m1.shape, np.nan)
    top[finite] = np.sqrt(np.maximum(np.linalg.eigvalsh(gram[finite])[..., -1], 0.0))
    measured = m1 * m1 >= SPREAD_MIN_M1_SQUARED  # else m1^2 and m2 underflowed, or m1 = 0
    spread = np.where(measured, m2 / np.where(measured, m1 * m1, 1.0) - 1.0, np.nan)
    return m1, spread, top, m2


def _jacobian(plan: Plan, weights: list, normalized: list, stats: np.ndarray) -> None:
    """Per layer, each input's Jacobian J^l = D^l W^l J^{l-1} (carried transposed, shape
    (networks, k, n_0, n_l)) and its spectrum statistics, averaged over the network's inputs,
    into the last stats row."""
    net, k = plan.network, plan.inputs_per_network
    n0 = net.widths[0]
    jt = np.broadcast_to(np.eye(n0), (weights[0].shape[0], k, n0, n0))
    for layer, (w, (y, _)) in enumerate(zip(weights, normalized)):
        jt = (jt @ w.transpose(0, 2, 1)[:, None]) * net.activation_fn.derivative(y)[:, :, None]
        values = [v.mean(axis=1) for v in spectrum_statistics(jt, net.widths[layer + 1])]
        add_jacobian(stats[layer, -1], *values)


class NumpyEngine(Engine):
    name = "numpy"
    priority = 0
    summary = "NumPy reference: brute force, every weight drawn, every option"
    ns_per_step, ns_per_layer = costs.NUMPY_NS_PER_STEP, costs.NUMPY_NS_PER_LAYER
    ns_per_jacobian_muladd = costs.JACOBIAN_NS_PER_MULADD_NUMPY
    parallel = False

    def full_block(self, plan: Plan) -> int:
        return networks_per_block(plan.network.n_weights * plan.inputs_per_network ** 0.5
                                  + jacobian_work(plan))

    def memory_bytes(self, plan: Plan) -> int:
        net, k = plan.network, plan.inputs_per_network
        per_network = 8 * (2 * net.n_weights + 4 * k * sum(net.widths))
        if plan.jacobian:  # J^T and the next one, the Gram matrix, the product's temporary
            w = net.widths
            per_network += 8 * k * (3 * w[0] * max(w) + min(w[0], max(w)) ** 2)
        return plan.networks_per_block * per_network

    def run(self, plan: Plan, first_block: int, n_blocks: int) -> np.ndarray:
        stats = new_stats(plan.network.depth, n_blocks, plan.stats_rows)
        # overflow is counted and flagged in the Result: NumPy's own warnings would only
        # repeat it, less precisely
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            for i in range(n_blocks):
                run_block(plan, first_block + i, stats[i])
        return stats


register(NumpyEngine())
