"""Statistical comparisons shared by the tests: "agrees within k standard errors".

K = 5 standard errors: for a normal estimate a false alarm about once in 1.7 million per
value compared, so fixed-seed tests over many layers and columns stay quiet, while a real
bias of a few SE still shows.
"""
import numpy as np

import fastvar

K = 5.0


def assert_within_se(value, truth, se, k=K, what=""):
    """Assert |value - truth| <= k * se elementwise (NaN anywhere fails).

    Parameters
    ----------
    value : float or array
        An estimate, e.g. a Result column (one entry per layer).
    truth : float or array
        The exact value it estimates (broadcast against ``value``).
    se : float or array
        The standard error of ``value``.
    k : float
        Tolerance in standard errors.
    what : str
        Names the quantity in the failure message.
    """
    value, truth, se = np.asarray(value), np.asarray(truth), np.asarray(se)
    gap = np.abs(value - truth)
    assert np.all(gap <= k * se), f"{what}: {value} vs {truth}, {gap / se} SE > {k}"


def _estimate(source, column):
    """(value, se) of ``column``: a Result's column and its ``_se`` column, or a mapping's
    (value, se) pair."""
    if isinstance(source, fastvar.Result):
        return source[column], source[column + "_se"]
    return source[column]


def assert_agree(a, b, columns, k=K):
    """Assert two independent estimates agree within k combined standard errors,
    |a - b| <= k * sqrt(se_a^2 + se_b^2), in every column and layer; NaN or infinite
    values or standard errors fail.

    Parameters
    ----------
    a, b : Result or mapping
        A :class:`fastvar.Result` (``column`` with its ``column + "_se"``), or a mapping
        column -> (value, se) of arrays.
    columns : sequence of str
        The columns compared.
    k : float
        Tolerance in combined standard errors.
    """
    for column in columns:
        (x, sx), (y, sy) = _estimate(a, column), _estimate(b, column)
        tol = k * np.sqrt(sx ** 2 + sy ** 2)
        finite = np.isfinite(x) & np.isfinite(y) & np.isfinite(tol)
        assert np.all(finite), f"{column}: not finite: {x} vs {y}, tolerance {tol}"
        assert np.all(np.abs(x - y) <= tol), f"{column}: {x} vs {y} (se {sx}, {sy}), tol {tol}"
