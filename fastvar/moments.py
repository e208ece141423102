"""The public one-pass accumulator of count, mean, variance, skewness and kurtosis."""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ._files import float_from_json, json_float
from .kernels.accumulators import merge_moments, update_moments
from .kernels.columns import shape_statistics as kernel_shape_statistics

_KEYS = ("count", "mean", "M2", "M3", "M4")  # the order of Moments.state


def shape_statistics(n, m2, m3, m4):
    """Skewness and excess kurtosis from a count and central sums.

    Ratios are taken before powers, so a finite state never overflows into a wrong
    kurtosis of -3.

    Parameters
    ----------
    n, m2, m3, m4 : float or array
        Count and central sums M2, M3, M4 (broadcast together).

    Returns
    -------
    skew, kurt : float64 arrays, the broadcast shape
        sqrt(n) M3 / M2^1.5 and n M4 / M2^2 - 3; NaN where M2 is 0 (constant values).
    """
    n, m2, m3, m4 = np.broadcast_arrays(*(np.asarray(x, dtype=np.float64)
                                          for x in (n, m2, m3, m4)))
    skew, kurt = kernel_shape_statistics(*(np.ascontiguousarray(x).reshape(-1)
                                           for x in (n, m2, m3, m4)))
    return skew.reshape(n.shape), kurt.reshape(n.shape)


class Moments:
    """Running moments of a stream of values, updated in one pass (Welford / Pebay).

    >>> m = Moments().update([1.0, 2.0, 3.0, 4.0])
    >>> m.count, m.mean(), m.var(ddof=1)
    (4, 2.5, 1.6666666666666667)

    ``a + b`` or ``a.merge(b)`` combine two accumulators exactly, as if their data had
    been seen in one stream. The state is the float64[5] array ``state`` =
    (count, mean, M2, M3, M4); from your own ``@numba.njit`` code call
    ``fastvar.kernels.accumulators.update_moments(state, values)`` (returns the number of
    skipped non-finite values) and ``merge_moments(state, other_state)`` on it.
    """

    __slots__ = ("state", "_low", "_low_of")

    def __init__(self) -> None:
        self.state = np.zeros(5, dtype=np.float64)
        # The mean is kept as state[1] + _low (a double-double): the data are accumulated
        # relative to state[1], so an offset of 1e15 under values that vary by 1 costs no
        # digits of the variance. _low_of is the (count, mean) it belongs to: state changed
        # from outside (update_moments on .state) leaves it behind, and then it is 0.
        self._low = 0.0
        self._low_of = (0.0, 0.0)

    def _mean_low(self) -> float:
        return self._low if self._low_of == (self.state[0], self.state[1]) else 0.0

    def _set(self, shifted: np.ndarray, shift: float) -> None:
        """Take the state ``shifted`` accumulated relative to ``shift`` (its mean is the
        mean minus shift), keeping the mean's rounding error in _low (TwoSum)."""
        hi = shift + shifted[1]
        back = hi - shift
        low = (shift - (hi - back)) + (shifted[1] - back)
        self.state = shifted.copy()
        self.state[1] = hi
        self._low = float(low) if math.isfinite(low) else 0.0
        self._low_of = (self.state[0], self.state[1])

    def update(self, values) -> "Moments":
        """Add ``values`` to the accumulator.

        The values are accumulated relative to the current mean (or the first value), so a
        large common offset does not cost precision.

        Parameters
        ----------
        values : array_like of real numbers, any shape
            Flattened and accumulated in float64.

        Returns
        -------
        Moments
            ``self``, updated.

        Raises
        ------
        TypeError
            If the values are not real numbers.
        ValueError
            If any value is NaN or infinite; the accumulator is left unchanged.
        """
        arr = np.asarray(values)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"values must be real numbers, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr, dtype=np.float64).reshape(-1)
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValueError(f"{int((~finite).sum())} of {arr.size} values are NaN or infinite;"
                             " drop them before update()")
        if arr.size == 0:
            return self
        shift, low = (self.state[1], self._mean_low()) if self.state[0] else (arr[0], 0.0)
        with np.errstate(over="ignore"):
            relative = arr - shift
        if not np.isfinite(relative).all():  # values of both signs near the float limit
            shift, low, relative = 0.0, 0.0, arr
        trial = self.state.copy()
        trial[1] = low
        update_moments(trial, relative)
        self._set(trial, shift)
        return self

    def merge(self, other: "Moments") -> "Moments":
        """Combine two accumulators exactly, as if their data were seen in one stream.

        Parameters
        ----------
        other : Moments
            The other accumulator (neither input changes).

        Returns
        -------
        Moments
            A new accumulator holding the data of both.

        Raises
        ------
        TypeError
            If ``other`` is not a Moments.
        """
        if not isinstance(other, Moments):
            raise TypeError(f"can only merge Moments, got {type(other).__name__}")
        out = Moments()
        if not other.state[0] or not self.state[0]:
            source = self if self.state[0] else other
            out._set(source.state, 0.0)
            out._low, out._low_of = source._mean_low(), (out.state[0], out.state[1])
            return out
        shift = self.state[1]  # both means relative to self's: the offset drops out exactly
        mine, theirs = self.state.copy(), other.state.copy()
        mine[1] = self._mean_low()
        with np.errstate(over="ignore", invalid="ignore"):
            theirs[1] = (other.state[1] - shift) + other._mean_low()
        merge_moments(mine, theirs)
        out._set(mine, shift)
        return out

    __add__ = merge

    @property
    def count(self) -> int:
        """Number of values seen."""
        return int(self.state[0])

    def mean(self) -> float:
        """The mean of the values.

        Returns
        -------
        float
            The mean, in the values' units; NaN when empty.
        """
        return float(self.state[1]) if self.state[0] else math.nan

    def var(self, ddof: int = 0) -> float:
        """The variance M2 / (count - ddof).

        Parameters
        ----------
        ddof : int, optional
            Delta degrees of freedom (0: the population variance, 1: the unbiased one).

        Returns
        -------
        float
            The variance, in squared units of the values; NaN when count <= ddof.
        """
        n = self.state[0] - ddof
        return float(self.state[2] / n) if n > 0 else math.nan

    def std(self, ddof: int = 0) -> float:
        """The standard deviation sqrt(var(ddof)).

        Parameters
        ----------
        ddof : int, optional
            Delta degrees of freedom, as for :meth:`var`.

        Returns
        -------
        float
            The standard deviation, in the values' units; NaN when count <= ddof.
        """
        return math.sqrt(self.var(ddof))

    def sem(self) -> float:
        """The standard error of the mean, std(ddof=1) / sqrt(count).

        Returns
        -------
        float
            The SE in the values' units, valid for independent values; NaN below 2 values.
        """
        return self.std(ddof=1) / math.sqrt(self.state[0]) if self.state[0] > 1 else math.nan

    def skew(self) -> float:
        """The sample skewness sqrt(n) M3 / M2^1.5 (biased, as ``scipy.stats.skew``).

        Returns
        -------
        float
            The skewness (dimensionless); NaN for constant values or none.
        """
        return float(shape_statistics(*self.state[[0, 2, 3, 4]])[0])

    def kurtosis(self) -> float:
        """The EXCESS kurtosis n M4 / M2^2 - 3 (as ``scipy.stats.kurtosis``).

        Returns
        -------
        float
            The excess kurtosis (dimensionless, 0 for a Gaussian); NaN for constant values
            or none.
        """
        return float(shape_statistics(*self.state[[0, 2, 3, 4]])[1])

    def to_dict(self) -> dict:
        """The state as a strict-JSON-safe dict, which :meth:`from_dict` rebuilds exactly.

        Returns
        -------
        dict
            ``count``, ``mean``, ``M2``, ``M3``, ``M4`` and ``mean_low``, the mean's low
            part (the mean is ``mean + mean_low``), so that later updates of a rebuilt
            accumulator lose no precision under a large offset. Overflowed (non-finite)
            entries are written as "inf" / "-inf" / None.
        """
        out = {k: json_float(x) for k, x in zip(_KEYS, map(float, self.state))}
        out["mean_low"] = json_float(self._mean_low())
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Moments":
        """Rebuild an accumulator from :meth:`to_dict` output.

        Parameters
        ----------
        data : mapping
            The dict. ``count`` must be a whole number >= 0; when it is positive ``mean``
            must be finite and ``M2``, ``M4`` not negative (inf and NaN are accepted there:
            they are what overflow leaves, and :meth:`to_dict` writes them).

        Returns
        -------
        Moments
            The accumulator, bitwise the one that wrote ``data``.

        Raises
        ------
        TypeError
            If ``data`` is not a mapping.
        ValueError
            If a key is missing or a value is out of range, naming the key.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a Moments dict (from Moments.to_dict) is needed, got "
                            f"{type(data).__name__}")
        missing = [k for k in _KEYS if k not in data]
        if missing:
            raise ValueError(f"Moments dict lacks the key {missing[0]!r}")
        count, mean, m2, m3, m4 = (float_from_json(k, data[k]) for k in _KEYS)
        if not (math.isfinite(count) and count >= 0 and count.is_integer()):
            raise ValueError(f"count must be a whole number >= 0, got {data['count']!r}")
        if count > 0:
            if not math.isfinite(mean):
                raise ValueError(f"mean must be finite when count > 0, got {data['mean']!r}")
            for key, value in (("M2", m2), ("M4", m4)):
                if value < 0:
                    raise ValueError(f"{key} must be >= 0 when count > 0, got {data[key]!r}")
        low = float_from_json("mean_low", data.get("mean_low", 0.0))  # absent before 0.2
        if not math.isfinite(low) or (low != 0.0 and abs(low) > abs(mean) * 1e-15):
            raise ValueError(f"mean_low must be a finite rounding error of mean, got "
                             f"{data['mean_low']!r}")
        out = cls()
        out.state = np.array([count, mean, m2, m3, m4], dtype=np.float64)
        out._low, out._low_of = low, (count, mean)
        return out

    def __repr__(self) -> str:
        return (f"Moments(count={self.count}, mean={self.mean():.6g}, var={self.var():.6g}, "
                f"skew={self.skew():.4g}, kurtosis={self.kurtosis():.4g})")
