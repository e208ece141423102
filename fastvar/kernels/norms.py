"""Normalization layers N before a layer's weights, as Numba functions on one vector.

LayerNorm (``NORM_LAYER``) centres a vector h of n units and divides it by its root mean
square r = sqrt(mean(c^2) + eps), c = h - mean(h); RMSNorm (``NORM_RMS``) divides h by
r = sqrt(mean(h^2) + eps). No learnable parameters, as at initialization. The backward
pass is the Jacobian's transpose, deterministic:

    RMS:   J^T v = (v - y mean(y v)) / r
    LAYER: J^T v = (v - mean(v) - y mean(y v)) / r

with y = N(h). A vector that is all zero (a dead layer, eps = 0) stays zero, with a zero
Jacobian, rather than 0 / 0 = NaN: that is the limit eps -> 0+ of what eps > 0 gives.
"""
import math

import numba

from .codes import NORM_LAYER


@numba.njit(cache=True, inline="always")
def _centre(norm, x):
    # the mean over units that LayerNorm subtracts (RMSNorm subtracts nothing)
    mean = 0.0
    if norm == NORM_LAYER:
        for i in range(x.shape[0]):
            mean += x[i]
        mean /= x.shape[0]
    return mean


@numba.njit(cache=True, _nrt=False)
def normalize(norm, eps, h, y):
    """y = N(h) for 1-D arrays.

    Parameters
    ----------
    norm : int
        The norm's code (:mod:`fastvar.kernels.codes`): LayerNorm or RMSNorm.
    eps : float
        Added inside the root.
    h : numpy.ndarray
        float64, 1-D.
    y : numpy.ndarray
        float64, the length of ``h``, overwritten.

    Returns
    -------
    float
        The scale r (inf for an all-zero h with eps = 0).
    """
    n = h.shape[0]
    mean = _centre(norm, h)
    square = 0.0
    for i in range(n):
        c = h[i] - mean
        square += c * c
    r = math.sqrt(square / n + eps)
    if r == 0.0:
        r = math.inf
    for i in range(n):
        y[i] = (h[i] - mean) / r
    return r


@numba.njit(cache=True, _nrt=False)
def normalize_backward(norm, v, y, r):
    """v <- J_N(h)^T v in place, for y = N(h) and its scale r from :func:`normalize`.

    Parameters
    ----------
    norm : int
        The norm's code.
    v : numpy.ndarray
        float64, 1-D: the cotangent of y, replaced by that of h.
    y : numpy.ndarray
        float64, N(h).
    r : float
        The scale.
    """
    n = v.shape[0]
    mean_v = _centre(norm, v)
    yv = 0.0
    for i in range(n):
        yv += y[i] * v[i]
    yv /= n
    for i in range(n):
        v[i] = (v[i] - mean_v - y[i] * yv) / r
