"""The Jacobian columns of a Result, from ``simulate(jacobian=True)``.

Per layer, statistics of the squared singular values lambda of each input's input-output
Jacobian J^l, with SEs between networks, and the infinite-width theory beside them
(:func:`fastvar.theory.jacobian_maps`).

Per network (averaged over its inputs): m1 = mean(lambda) = ||J||_F^2 / n_l, the normalized
spread m2 / m1^2 - 1 with m2 = mean(lambda^2), and the largest singular value
sqrt(lambda_max). Columns: ``jac_m1``, ``jac_spread``, ``jac_max`` (means over networks) and
their ``*_se``; ``jac_m1_theory`` and ``jac_spread_theory``. The spread is averaged as a
per-network normalized moment: the ratio of the means would be inflated by the log-normal
fluctuations of m1 between networks. At width n, per-network m2 / m1^2 is a ratio, biased
by O(depth / n) relative to the infinite-width value.
"""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from ..kernels.accumulators import JAC_ROWS, MOMENTS, NONFINITE, PAIR, UNDEFINED, WELFORD
from ..network import Network
from ..theory import jacobian_maps
from .columns import heavy_tails, layer_ranges, mean_var_se

MEASURED = ("jac_m1", "jac_m1_se", "jac_spread", "jac_spread_se", "jac_max", "jac_max_se",
            "jac_nonfinite", "jac_undefined", "jac_heavy_tails")
THEORY = ("jac_m1_theory", "jac_spread_theory")


def split_jacobian(stats: np.ndarray, jacobian: bool
                   ) -> "tuple[np.ndarray, np.ndarray | None]":
    """The JAC rows of a merged stats array, split off.

    Parameters
    ----------
    stats : numpy.ndarray
        Merged stats, shape (L, rows, S).
    jacobian : bool
        Whether the run measured the Jacobian (its row is then the last).

    Returns
    -------
    tuple
        (the stats without the JAC row, the JAC rows (L, S) or None).
    """
    if not jacobian:
        return stats, None
    return (np.ascontiguousarray(stats[:, :-JAC_ROWS]),
            np.ascontiguousarray(stats[:, -JAC_ROWS]))


def measured_columns(jac: np.ndarray, zero_inputs: bool = False) -> dict[str, np.ndarray]:
    """The measured Jacobian columns: means over networks with SEs.

    Where the Jacobian is all-zero in every network (every network died there: m1 = 0),
    the SEs (0) would be wrong, as for q (:func:`fastvar.results.columns.network_counts`): they
    are NaN and ``jac_heavy_tails`` is True, unless ``zero_inputs`` (an all-zero input
    without biases) makes the zeros true.

    Parameters
    ----------
    jac : numpy.ndarray
        The JAC rows, shape (L, S).
    zero_inputs : bool
        Every value may be exactly 0 truly.

    Returns
    -------
    dict
        Name -> (L,) array: :data:`MEASURED`; SEs are sample std / sqrt(networks), NaN
        where fewer than 2 networks count.
    """
    m1, _, m1_se = mean_var_se(*(jac[:, MOMENTS + i] for i in range(3)))
    spread, _, spread_se = mean_var_se(*(jac[:, WELFORD + i] for i in range(3)))
    top, _, top_se = mean_var_se(jac[:, PAIR], jac[:, PAIR + 1], jac[:, PAIR + 3])
    networks = jac[:, MOMENTS]
    zero = (networks > 0) & (jac[:, UNDEFINED] >= networks) & (not zero_inputs)
    if zero.any():  # else untouched: bitwise today's numbers
        m1_se, spread_se, top_se = (np.where(zero, np.nan, se)
                                    for se in (m1_se, spread_se, top_se))
    return {"jac_m1": m1, "jac_m1_se": m1_se, "jac_spread": spread,
            "jac_spread_se": spread_se, "jac_max": top, "jac_max_se": top_se,
            "jac_nonfinite": jac[:, NONFINITE].astype(np.int64),
            "jac_undefined": jac[:, UNDEFINED].astype(np.int64),
            "jac_heavy_tails": heavy_tails(jac) | zero}


def warnings(columns) -> list[str]:
    """Lines for :attr:`Result.warnings` on the Jacobian columns.

    Parameters
    ----------
    columns : mapping
        A Result's columns (with the Jacobian's).

    Returns
    -------
    list of str
        Networks left out of the Jacobian columns, and layers whose per-network m1 is too
        heavy-tailed for reliable SEs; empty when none.
    """
    lines = []
    for name, why in (("jac_nonfinite", "had a NaN or infinite Jacobian statistic (overflow) "
                       "and are left out of the jac_ columns"),
                      ("jac_undefined", "had an all-zero Jacobian (m1 = 0, or m1^2 below "
                       "1e-308: underflow) and are left out of jac_spread")):
        bad = columns[name] > 0
        if bad.any():
            lines.append(f"up to {int(columns[name].max())} networks {why} at "
                         f"{layer_ranges(bad)}")
    if columns["jac_heavy_tails"].any():
        lines.append(f"{layer_ranges(columns['jac_heavy_tails'])}: the Jacobian's m1 is "
                     "too heavy-tailed over networks for their number (as for q_heavy_tails): "
                     "jac_m1_se, jac_spread_se and jac_max_se there are unreliable (too small "
                     "in most runs)")
    return lines


def theory_columns(network: Network, input_q0: float,
                   input_q0_rows: "tuple[np.ndarray, np.ndarray] | None"
                   ) -> dict[str, Callable[[], dict[str, np.ndarray]]]:
    """The theory columns, as functions computed on first use.

    Parameters
    ----------
    network : Network
        The network.
    input_q0 : float
        Mean squared input entry.
    input_q0_rows : tuple of two numpy.ndarray or None
        A data set's distinct row lengths and their counts, or None.

    Returns
    -------
    dict
        Name -> function computing ``jac_m1_theory`` and ``jac_spread_theory`` together
        (see :class:`fastvar.results.columns.Columns`).
    """
    start = ({"q0": input_q0} if input_q0_rows is None
             else {"q0": input_q0_rows[0], "counts": input_q0_rows[1]})
    return dict.fromkeys(THEORY, functools.partial(_theory, network, start))


def _theory(network: Network, start: dict) -> dict[str, np.ndarray]:
    m1, spread = jacobian_maps(network, **start)
    return {"jac_m1_theory": m1, "jac_spread_theory": spread}
