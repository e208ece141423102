"""Per-layer histograms of z, a and delta: fixed bins, integer counts that merge by adding.

Bins. Counts from different blocks, threads, resumed checkpoints and Dask workers add up
to the same numbers only if every block bins on the same edges, so the edges are fixed
from the request before any block runs, never from data. Layer l's bins for a quantity
are ``BINS`` = 190 uniform bins over [-9.5 s, 9.5 s] (width s / 10), where s is that
layer's infinite-width scale (:mod:`fastvar.theory`):

* z: s = sqrt(q^l), the ``q_theory`` column;
* a = phi(z): s = sqrt(E[phi(u)^2]), u ~ N(0, q^l) (after a norm, Var N(h) = q / (q + eps));
* delta (the backward signal dL/dz, with gradients): s = sqrt(E[g^l]), the ``g_theory``.

For a data set these come from the maps averaged over its rows. One set of bins thus
serves every layer whatever its scale, and 0 is an edge: exact zeros (dead ReLU units)
fill the bin [0, s / 10). Where the theory scale is not finite and positive (it
overflowed, or is exactly 0: an all-zero input without biases), the layer's bins are in
absolute units instead (s = 1; ``scale_from`` says "unit"). Finite values outside the
range are counted in ``below`` and ``above``: nothing is dropped. NaN and infinite values
are in no histogram; the columns ``nonfinite_z``, ``nonfinite_a`` and ``nonfinite_delta``
count them, so ``total`` = below + counts + above = trials x width minus those.

Memory: 3 x 192 counts per layer, carried as 36 extra rows of each block's stats array
(:mod:`fastvar.kernels.accumulators`); they are exact integers up to 2**53 values a
layer, so a run that could pass that is refused up front.
"""
from __future__ import annotations

import math

import numpy as np

from ..kernels.accumulators import HIST_BINS, HIST_QUANTITIES, HIST_RANGE, HIST_SLOTS, ROWS

BINS = HIST_BINS
RANGE = HIST_RANGE
QUANTITIES = ("z", "a", "delta")
MAX_COUNT = 2 ** 53  # float64 counts are exact integers up to this


def bin_scales(net, q0: float, q0_rows, gradients: bool) -> np.ndarray:
    """Each layer's infinite-width scale of z, a and delta, the unit of its bins.

    Parameters
    ----------
    net : Network
        The network.
    q0 : float
        The mean squared input entry ||x||^2 / n_0.
    q0_rows : tuple of two numpy.ndarray or None
        A data set's per-row lengths (sorted distinct values, counts), as in
        :func:`fastvar.api.plan`; None for fresh normal inputs or one fixed input.
    gradients : bool
        Whether the run has gradients (else the delta scales are NaN).

    Returns
    -------
    numpy.ndarray
        Shape (L, 3): columns z, a, delta, in value units; NaN where the scale is not finite
        and positive (the bins are then in absolute units, see :func:`bin_scale`).
    """
    from .. import theory
    from .columns import mean_field_columns

    with np.errstate(all="ignore"):
        maps = mean_field_columns(net, gradients, q0, q0_rows)
        q, g = maps["q_theory"], maps["g_theory"]
        var = q if net.norm is None else np.where(np.isinf(q), 1.0, q / (q + net.norm_eps))
        second = np.full(net.depth, np.nan)
        finite = np.isfinite(var) & (var >= 0)
        if finite.any():
            second[finite] = theory.gaussian_moments(net.activation_fn, var[finite])[1]
        scales = np.sqrt(np.stack([q, second, g], axis=1).astype(np.float64))
        usable = (np.isfinite(scales) & (scales > 0) & np.isfinite(RANGE * scales)
                  & np.isfinite((BINS / (2 * RANGE)) / scales))
    return np.where(usable, scales, np.nan)


def bin_scale(scales: np.ndarray) -> np.ndarray:
    """The scale the bins use: the theory scale of :func:`bin_scales`, 1 where it is NaN.

    Parameters
    ----------
    scales : numpy.ndarray
        Theory scales, any shape (NaN: none).

    Returns
    -------
    numpy.ndarray
        The same shape, NaN replaced by 1.
    """
    return np.where(np.isnan(scales), 1.0, scales)


def split_stats(stats: np.ndarray) -> "tuple[np.ndarray, np.ndarray | None]":
    """Split a merged stats array into its statistics rows and its histogram counts.

    Parameters
    ----------
    stats : numpy.ndarray
        Merged stats, shape (L, ROWS, S) or, with histograms, (L, ROWS + extra rows, S).

    Returns
    -------
    stats : numpy.ndarray
        The statistics rows, shape (L, ROWS, S).
    counts : numpy.ndarray or None
        The histogram counts, int64 of shape (L, 3, HIST_SLOTS); None without histograms.
    """
    if stats.shape[-2] == ROWS:
        return stats, None
    flat = stats[:, ROWS:].reshape(stats.shape[0], -1)[:, :HIST_QUANTITIES * HIST_SLOTS]
    counts = flat.reshape(stats.shape[0], HIST_QUANTITIES, HIST_SLOTS).astype(np.int64)
    return np.ascontiguousarray(stats[:, :ROWS]), counts


def check_size(trials: int, widths) -> None:
    """Refuse a run whose histograms could count more values than float64 counts hold exactly.

    Parameters
    ----------
    trials : int
        Forward passes.
    widths : sequence of int
        n_0, ..., n_L.

    Raises
    ------
    ValueError
        trials x the widest layer exceeds 2**53.
    """
    values = trials * max(widths[1:])
    if values > MAX_COUNT:
        raise ValueError(f"histograms count at most 2**53 values a layer exactly; this run "
                         f"has {values:.3g} ({trials} trials x width {max(widths[1:])}); use "
                         "fewer trials")


class Histogram:
    """The histogram of one quantity (z, a or delta) at one layer of a Result.

    Attributes
    ----------
    edges : float64 array, shape (B + 1,)
        Bin edges (value units), increasing; bin j is [edges[j], edges[j + 1]).
    counts : int64 array, shape (B,)
        Values in each bin.
    below, above : int
        Finite values below edges[0] and at or above edges[B].
    total : int
        All finite values counted: below + counts.sum() + above.
    quantity : str
        "z", "a" or "delta".
    layer : int
        The layer, 1-based as in :meth:`fastvar.Result.table`.
    scale : float
        The unit of the bins: the layer's infinite-width scale of the quantity (see
        :mod:`fastvar.results.histogram`), or 1 where that is not finite and positive.
    scale_from : str
        "theory" or "unit" (the fallback to absolute units).
    """

    def __init__(self, edges, counts, below: int = 0, above: int = 0, *, quantity: str = "",
                 layer: int = 0, scale: float = 1.0, scale_from: str = "unit") -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        self.counts = np.asarray(counts, dtype=np.int64)
        if self.edges.ndim != 1 or self.counts.shape != (self.edges.size - 1,):
            raise ValueError(f"edges (B + 1,) and counts (B,) must match, got shapes "
                             f"{self.edges.shape} and {self.counts.shape}")
        if not (np.all(np.isfinite(self.edges)) and np.all(np.diff(self.edges) > 0)):
            raise ValueError("edges must be finite and increasing")
        self.below, self.above = int(below), int(above)
        if min(self.below, self.above, int(self.counts.min(initial=0))) < 0:
            raise ValueError("counts, below and above must be >= 0")
        self.quantity, self.layer = str(quantity), int(layer)
        self.scale, self.scale_from = float(scale), str(scale_from)

    @property
    def total(self) -> int:
        """Finite values counted: below + counts.sum() + above."""
        return self.below + int(self.counts.sum()) + self.above

    @property
    def centers(self) -> np.ndarray:
        """Bin centres, shape (B,)."""
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    def density(self) -> np.ndarray:
        """The histogram as a density per unit value.

        Returns
        -------
        numpy.ndarray
            counts / (total x bin width), shape (B,): it integrates to the share of values
            inside the bins, (total - below - above) / total. NaN when there are no values.
        """
        if self.total == 0:
            return np.full(self.counts.size, np.nan)
        return self.counts / (self.total * np.diff(self.edges))

    def quantile(self, p):
        """The p-quantile(s) of the values, linear within a bin.

        Parameters
        ----------
        p : float or array_like
            Probabilities in [0, 1].

        Returns
        -------
        float or numpy.ndarray
            Shaped like ``p``, in value units; NaN where it falls among the values below or above
            the bins (their positions are not kept), and when there are no values.

        Raises
        ------
        ValueError
            A probability outside [0, 1].

        Examples
        --------
        >>> import numpy as np
        >>> from fastvar import Histogram
        >>> float(Histogram(np.array([0.0, 1.0, 2.0]), np.array([1, 1])).quantile(0.5))
        1.0
        """
        probs = np.asarray(p, dtype=np.float64)
        if not np.all((probs >= 0) & (probs <= 1)):
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        out = np.full(probs.shape, np.nan)
        filled = np.flatnonzero(self.counts)
        if self.total and filled.size:
            cum = self.below + np.cumsum(self.counts)[filled]  # strictly increasing
            target = probs * self.total
            inside = (target >= self.below) & (target <= cum[-1])
            j = np.searchsorted(cum, target[inside], side="left")
            bins = filled[j]
            share = (target[inside] - (cum[j] - self.counts[bins])) / self.counts[bins]
            low = self.edges[bins]
            out[inside] = low + share * (self.edges[bins + 1] - low)
        return out[()] if out.ndim == 0 else out

    def __repr__(self) -> str:
        return (f"Histogram({self.quantity or 'values'}, layer {self.layer}: "
                f"{self.counts.size} bins over [{self.edges[0]:.4g}, {self.edges[-1]:.4g}], "
                f"total {self.total}, below {self.below}, above {self.above})")


def edges_of(scale: float) -> np.ndarray:
    """The BINS + 1 bin edges of a layer whose bins have unit ``scale``.

    Parameters
    ----------
    scale : float
        The unit of the bins (value units).

    Returns
    -------
    numpy.ndarray
        Shape (BINS + 1,) = (191,): uniform over [-9.5 scale, 9.5 scale], 0 among them.
    """
    return scale * (np.arange(BINS + 1) - BINS / 2) * (2 * RANGE / BINS)


def layer_histogram(counts: np.ndarray, scales: np.ndarray, layer: int, of: str) -> Histogram:
    """The :class:`Histogram` of one quantity at one layer from a Result's arrays.

    Parameters
    ----------
    counts : numpy.ndarray
        int64 counts, shape (L, 3, HIST_SLOTS): below, the bins, above.
    scales : numpy.ndarray
        Theory scales, shape (L, 3) (NaN: absolute units).
    layer : int
        1 to L.
    of : {"z", "a", "delta"}
        The quantity.

    Returns
    -------
    Histogram
        Edges in value units.
    """
    q = QUANTITIES.index(of)
    theory = scales[layer - 1, q]
    scale = 1.0 if math.isnan(theory) else float(theory)
    slots = counts[layer - 1, q]
    return Histogram(edges_of(scale), slots[1:-1], slots[0], slots[-1], quantity=of,
                     layer=layer, scale=scale,
                     scale_from="unit" if math.isnan(theory) else "theory")
