"""The Result of a simulation: per-layer columns with standard errors, and their export.

Columns are derived from the merged stats array (L, ROWS, STATS_SIZE) of
:mod:`fastvar.kernels.accumulators`. Units of one trial are not independent (they share
||a^{l-1}||), so std / sqrt(units x trials) would understate the error, often by a factor
of several at depth: every standard error here comes from the variation between
independent networks (per-network means of x and x^2), by the delta method where needed.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from ._checks import check_int, check_real
from ._files import float_from_json, json_float, write_file
from .kernels.accumulators import (A, DELTA, LINK, MOMENTS, NET, NONFINITE, PAIR, ROWS,
                                   STATS_SIZE, UNDEFINED, WELFORD, Z)
from .moments import shape_statistics
from .network import Network
from .theory import (correlation_fixed_point, correlation_map, mean_field_maps,
                     variance_map)

COLUMNS = ("layer", "width", "z_mean", "z_var", "z_var_se", "z_skew", "z_kurt",
           "a_mean", "a_var", "a_var_se", "q_mean", "q_mean_se", "q_var",
           "grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var",
           "m_mean", "m_mean_se", "m_var", "c_mean", "c_mean_se", "c_undefined",
           "dead_frac", "dead_frac_se",
           "nonfinite_z", "nonfinite_a", "nonfinite_delta", "overflow", "underflow", "complete")
PAIR_COLUMNS = ("c_mean", "c_mean_se")
# mean squares below TINY: their squares (SEs) and fourth powers (kurtosis) underflow
TINY = 1e-140
# what squares or fourth powers of underflowing values make meaningless, forward and backward
UNDERFLOW_COLUMNS = (("z_var_se", "z_skew", "z_kurt", "a_var_se", "q_mean_se", "q_var",
                      "m_mean_se", "m_var", "dead_frac", "dead_frac_se"),
                     ("grad_var_se", "g_mean_se", "g_var"))
TABLE_WIDTH = 100  # characters: the default table fits a terminal
GRADIENT_COLUMNS = ("grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var")
# phi(c z) = c phi(z) for c > 0 and z symmetric given the layer below: E[phi(z)^2] is then
# proportional to E[z^2] unit by unit, so E[q^l] is the mean-field map exactly at any width.
_EXACT_MEAN_ACTIVATIONS = ("linear", "relu", "leaky_relu")


class IncompleteStatisticsWarning(RuntimeWarning):
    """Some statistics of a Result were computed from fewer values than requested (NaN or
    infinite values left out) or overflowed; the ``complete`` column says which layers."""


def _pooled(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, variance, skewness, excess kurtosis of pooled unit values; rows (L, S)."""
    n, mean, m2, m3, m4 = (row[:, MOMENTS + i] for i in range(5))
    skew, kurt = shape_statistics(n, m2, m3, m4)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"mean": np.where(n > 0, mean, np.nan), "var": np.where(n > 0, m2 / n, np.nan),
                "skew": skew, "kurt": kurt}


def _between_networks(row: np.ndarray) -> dict[str, np.ndarray]:
    """SEs from the per-network (mean, mean square) pairs: of the variance and of E[x^2]."""
    n, mx, _, cxx, cxy, cyy = (row[:, PAIR + i] for i in range(6))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = 1.0 / ((n - 1.0) * n)  # sample covariance / n: covariance of the means
        # Var(mean x^2 - mean x^2 ...) by the delta method: (2 mx)^2 cxx - 2 (2 mx) cxy + cyy,
        # divided through by its largest term before squaring so it cannot overflow
        big = np.maximum(np.abs(2 * mx) * np.sqrt(cxx), np.sqrt(cyy))
        unit = np.where(big > 0, big, 1.0)
        t = 2 * mx / unit
        inner = t * t * cxx - 2 * t * (cxy / unit) + (cyy / unit) / unit
        var_se = big * np.sqrt(np.maximum(inner, 0.0) * scale)
        return {"var_se": var_se, "sq_se": np.sqrt(cyy) * np.sqrt(scale)}


def _lengths(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, variance (ddof=1) and SE of the mean of a welford state (per-trial lengths
    ||x||^2 / n, or per-network cosines)."""
    n, mean, m2 = (row[:, WELFORD + i] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        var = np.where(n > 1, m2 / (n - 1.0), np.nan)  # not -0.0 from n = 0
        return {"mean": np.where(n > 0, mean, np.nan), "var": var, "se": np.sqrt(var / n)}


def _per_network(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean over networks of a per-network value kept as moments, and its SE."""
    n, mean, m2 = (row[:, MOMENTS + i] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"mean": np.where(n > 0, mean, np.nan), "se": np.sqrt(m2 / ((n - 1.0) * n))}


def ratio_of_means(row: np.ndarray, shift: "float | np.ndarray" = 0.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(E[y] - shift) / (E[x] - shift) and its SE (delta method with the measured
    covariance of x and y over networks) from pair states, rows (L, S)."""
    n, mx, my, cxx, cxy, cyy = (row[:, PAIR + i] for i in range(6))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        x, y = mx - shift, my - shift
        r = y / x
        var = (cyy - 2 * r * cxy + r * r * cxx) / ((n - 1.0) * n) / (x * x)
        return np.where(n > 0, r, np.nan), np.sqrt(np.maximum(var, 0.0))


def compute_columns(stats: np.ndarray, widths, gradients: bool, pairs: bool = False,
                    zero_gradients: bool = False) -> dict[str, np.ndarray]:
    """All result columns from a merged stats array of shape (L, ROWS, STATS_SIZE).

    Besides the statistics, per layer: ``nonfinite_z/_a/_delta`` count the NaN or infinite
    unit values left out; ``overflow`` is True where the accumulated sums themselves
    overflowed (values beyond about 1e154, or 1e77 for the fourth moments); ``complete``
    is True where neither happened and nothing underflowed (``underflow``, see
    :func:`_underflow`), i.e. every statistic of the layer uses every value.
    """
    z, a, d = stats[:, Z], stats[:, A], stats[:, DELTA]
    zp, ap, dp = _pooled(z), _pooled(a), _pooled(d)
    zs, as_, ds = _between_networks(z), _between_networks(a), _between_networks(d)
    zq, dq, aq = _lengths(z), _lengths(d), _lengths(a)
    cos, dead = _lengths(stats[:, NET]), _per_network(stats[:, NET])
    used = stats[:, [Z, A, NET, DELTA, LINK] if gradients else [Z, A, NET]]
    bad = used[..., NONFINITE].sum(axis=1)
    overflow = ~np.isfinite(np.delete(used, NONFINITE, axis=2)).all(axis=(1, 2))
    forward, backward = _underflow(stats, gradients, zero_gradients)
    underflow = forward | backward
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
        "complete": (bad == 0) & ~overflow & ~underflow,
    }
    for names, flags in zip(UNDERFLOW_COLUMNS, (forward, backward)):
        for name in names:
            cols[name] = np.where(flags, np.nan, cols[name])
    for name in (() if gradients else GRADIENT_COLUMNS) + (() if pairs else PAIR_COLUMNS):
        cols[name] = np.full(stats.shape[0], np.nan)
    return cols


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
    forward = np.zeros(depth, dtype=bool)
    for l in range(depth):
        zero = (zs[l] == 0) | (as_[l] == 0)
        forward[l] = tiny(zs[l]) | tiny(as_[l]) | (l > 0 and forward[l - 1] and zero)
    if not gradients:
        return forward, np.zeros(depth, dtype=bool)
    # below the output (where delta ~ N(0, I)), gradients that are exactly 0 in every
    # network come from phi' underflowing (tanh'(1e50) = 1 - 1.0 = 0, not e^-1e50) or from
    # zeros above: what they would measure is lost
    backward = tiny(ds) | ((ds == 0) & (np.arange(depth) < depth - 1) & (not zero_gradients))
    return forward, backward


def _layers(mask: np.ndarray) -> str:
    """'layer 3', 'layers 3-10' or 'layers 3-5, 8' for the layers (1-based) where ``mask``
    is True."""
    runs, start = [], None
    for i, flag in enumerate(list(mask) + [False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append(f"{start + 1}" if i - 1 == start else f"{start + 1}-{i}")
            start = None
    single = len(runs) == 1 and "-" not in runs[0]
    return ("layer " if single else "layers ") + ", ".join(runs)


def quality_warnings(cols: dict[str, np.ndarray]) -> list[str]:
    """Lines that say which statistics are incomplete or overflowed, empty if none."""
    lines = []
    parts = [f"{q} at {_layers(cols[f'nonfinite_{q}'] > 0)} "
             f"({int(cols[f'nonfinite_{q}'].sum())} values)"
             for q in ("z", "a", "delta") if cols[f"nonfinite_{q}"].any()]
    if parts:
        lines.append(f"NaN or infinite values (overflow) were left out: {', '.join(parts)}; "
                     "q, g and the SEs there use only the networks whose values were all finite")
    if cols["overflow"].any():
        lines.append(f"{_layers(cols['overflow'])}: statistics overflowed (squares of "
                     "values beyond about 1e154, fourth powers beyond 1e77) and show inf or nan")
    forward = cols["underflow"] & np.isnan(cols["q_mean_se"])
    if forward.any():
        lines.append(f"{_layers(forward)}: values underflow (mean squares below {TINY:g}, or "
                     "exactly 0 after such a layer): their SEs, kurtosis and dead fraction "
                     "show nan, and zeros there are not measurements")
    backward = cols["underflow"] & ~forward
    if backward.any():
        lines.append(f"{_layers(backward)}: the gradients are exactly 0 in every network "
                     "(phi' underflowed, or is 0 there): their SEs show nan")
    return lines


# entries of a stats row that count things
_COUNTS = (MOMENTS, WELFORD, PAIR, NONFINITE, UNDEFINED)


def _stats_from_json(value: Any, depth: int) -> np.ndarray:
    """The stats array of a result dict: shape (depth, ROWS, STATS_SIZE), counts checked."""
    shape = (depth, ROWS, STATS_SIZE)
    try:
        cells = np.array(value, dtype=object)
    except ValueError:  # ragged nesting
        cells = np.empty(0, dtype=object)
    if cells.shape != shape:
        raise ValueError(f"stats must have shape {shape} (layers of the network, rows z, a, "
                         f"delta, per-network, links; accumulator entries), got {_shape_of(value)}")
    stats = np.empty(shape)
    for index, cell in np.ndenumerate(cells):
        stats[index] = float_from_json(f"stats{list(index)}", cell)
    counts = stats[..., list(_COUNTS)]
    bad = ~(np.isfinite(counts) & (counts >= 0) & (counts == np.floor(counts)))
    if bad.any():
        layer, quantity, which = np.argwhere(bad)[0]
        index = [int(layer), int(quantity), _COUNTS[which]]
        raise ValueError(f"stats{index} is a count and must be a whole number >= 0, "
                         f"got {stats[tuple(index)]}")
    return stats


def _check_consistent(stats: np.ndarray, trials: int, k: int, correlation, engine: str) -> None:
    """ValueError unless the metadata of a result dict agree with its stats."""
    from .engines import ENGINES

    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r} is none of {', '.join(ENGINES)}")
    networks = trials // k
    # every network adds its dead fraction at layer 1 unless an activation there was NaN
    counted, lost = stats[0, NET, MOMENTS], stats[0, A, NONFINITE]
    if counted > networks or (lost == 0 and counted != networks):
        raise ValueError(f"trials ({trials}) and inputs_per_network ({k}) say {networks} "
                         f"networks, but the stats hold {counted:.0f}")
    measured = stats[:, NET, WELFORD].any() or stats[:, NET, UNDEFINED].any()
    if measured and correlation is None:
        raise ValueError("input_correlation is missing although the stats hold input pairs")
    if correlation is not None and k != 2:
        raise ValueError(f"input_correlation needs inputs_per_network 2 (pairs), got {k}")


def _shape_of(value: Any) -> str:
    """The nesting of a list for an error message, e.g. '(5, 3, 15)' or 'a ragged list'."""
    try:
        return str(np.array(value, dtype=float).shape)
    except (ValueError, TypeError):
        return "a ragged or non-numeric list" if isinstance(value, (list, tuple)) else repr(value)


def _q0_rows_from_json(value: Any) -> "tuple[list, list] | None":
    """The optional per-row input lengths of a data set: None, or {"values": [...],
    "counts": [...]} with finite values >= 0 and whole counts >= 1, as (values, counts)."""
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"values", "counts"}:
        raise ValueError(f"input_q0_rows must be null or a dict with 'values' and 'counts', "
                         f"got {value!r}")
    values, counts = value["values"], value["counts"]
    if (not isinstance(values, (list, tuple)) or not isinstance(counts, (list, tuple))
            or not values or len(values) != len(counts)):
        raise ValueError("input_q0_rows: 'values' and 'counts' must be non-empty lists of the "
                         "same length")
    return ([check_real(f"input_q0_rows values[{i}]", x, 0.0, strict=False)
             for i, x in enumerate(values)],
            [check_int(f"input_q0_rows counts[{i}]", n, 1, 2 ** 63 - 1)
             for i, n in enumerate(counts)])


def _csv_cell(x: Any) -> str:
    """One CSV value: floats exactly (repr, 'nan', 'inf'), bools as true/false, ints as ints."""
    if isinstance(x, (bool, np.bool_)):
        return "true" if x else "false"
    if isinstance(x, (float, np.floating)):
        return repr(float(x))
    return str(x)


class Result:
    """Per-layer statistics of a simulation.

    Every column is a NumPy array of length L (layers 1..L), reachable as
    ``res["z_var"]`` or ``res.z_var``; ``res.columns`` lists them. ``*_se`` columns are
    standard errors from the variation between independent networks. Gradient columns
    are NaN when the run had ``gradients=False``. ``q_theory`` and ``g_theory`` are the
    infinite-width predictions of ``q_mean`` and ``g_mean`` (:mod:`fastvar.theory`): for a
    data set, the average over its rows of the maps started at each row's own length (not
    the maps of the mean length, which differ for curved activations such as tanh).

    Nothing is silently wrong: NaN or infinite values (overflow) are left out of the
    statistics and counted per layer in ``nonfinite_z``, ``nonfinite_a`` and
    ``nonfinite_delta``; ``overflow`` marks layers whose accumulated sums overflowed;
    ``complete`` is False for either. :attr:`warnings` explains them in words, and
    :func:`fastvar.simulate` issues an :class:`IncompleteStatisticsWarning`.

    Beyond z, a and delta: ``m_mean``, ``m_mean_se``, ``m_var`` describe the per-trial
    length of the activations M^l = ||a^l||^2 / n_l (as ``q_*`` do for z);
    ``dead_frac`` (± ``dead_frac_se``) is the fraction of trials whose a^l is all exactly
    zero (a dead network for that input: with ReLU and no bias it stays dead). With input
    pairs (``simulate(correlation=...)``), ``c_mean`` (± ``c_mean_se``) is the mean over
    networks of the cosine c^l = <z^l, z'^l> / (||z^l|| ||z'^l||) of the two inputs'
    pre-activations, beside ``c_theory`` (NaN for pairs of data-set rows, whose theory is
    an average over every pair's own map; else :func:`fastvar.theory.correlation_map` from the
    pair's c0 and q0); ``c_undefined`` counts networks left out because z^l or z'^l was all
    zero (a cosine of a zero vector is undefined). Without pairs these are NaN. At width
    n the per-network cosine, a ratio, is biased by O(1/n). :meth:`slopes` reads the
    measured backward gain and the slope of the correlation map from the same run.

    Attributes: ``network``, ``trials``, ``seed``, ``engine``, ``elapsed_s`` (seconds of
    the run itself), ``compile_s`` (seconds spent compiling or loading the kernels first),
    ``inputs_per_network``, ``gradients``, ``input_q0`` (mean squared input entry
    ||x||^2 / n_0, averaged over a data set's rows), ``input_q0_rows`` (a data set's
    per-row lengths as a pair of arrays: sorted distinct values and how many rows have
    each; None for fresh normal inputs and a single fixed input),
    ``input_correlation`` (the pairs' c0, None without pairs), ``stats`` (the merged
    accumulator state, shape (L, ROWS, S), see :mod:`fastvar.kernels.accumulators`),
    ``partial`` (True for the blocks completed before an interruption, see
    :class:`fastvar.Interrupted`: ``trials`` then counts the trials actually done).
    """

    def __init__(self, network: Network, stats: np.ndarray, *, trials: int, seed: int, engine: str,
                 elapsed_s: float, compile_s: float = 0.0, inputs_per_network: int = 1,
                 gradients: bool = True,
                 input_q0: float = 1.0,
                 input_q0_rows: "tuple[np.ndarray, np.ndarray] | None" = None,
                 input_correlation: "float | None" = None, partial: bool = False) -> None:
        self.network = network
        self.stats = np.asarray(stats, dtype=np.float64)
        self.trials, self.seed, self.engine = int(trials), int(seed), str(engine)
        self.elapsed_s, self.compile_s = float(elapsed_s), float(compile_s)
        self.inputs_per_network, self.gradients = int(inputs_per_network), bool(gradients)
        self.input_q0, self.partial = float(input_q0), bool(partial)
        self.input_correlation = (None if input_correlation is None
                                  or math.isnan(input_correlation) else float(input_correlation))
        pairs = self.input_correlation is not None
        self.input_q0_rows = None
        start: "dict[str, Any]" = {"q0": self.input_q0}
        if input_q0_rows is not None:
            values, counts = (np.asarray(v, dtype=np.float64) for v in input_q0_rows)
            self.input_q0_rows = (values, counts.astype(np.int64))
            start = {"q0": values, "counts": counts}
        # a norm over 1 or 2 units is constant (+-1): its gradients are exactly 0, truly
        constant_norm = network.norm is not None and min(network.widths[1:]) <= 2
        self._columns = compute_columns(self.stats, network.widths, self.gradients, pairs,
                                        zero_gradients=constant_norm)
        if self.gradients:
            self._columns["q_theory"], self._columns["g_theory"] = mean_field_maps(network, **start)
        else:
            self._columns["q_theory"] = variance_map(network, **start)
            self._columns["g_theory"] = np.full(network.depth, np.nan)
        # pairs of data-set rows: the theory would be the average of every pair's map (each
        # with its own two lengths and cosine); the map of the mean is off by tens of SE
        # where the rows' lengths differ, so it is not shown
        self._columns["c_theory"] = (
            correlation_map(network, self.input_correlation, self.input_q0)
            if pairs and input_q0_rows is None else np.full(network.depth, np.nan))

    def slopes(self, c_star: "float | None" = None) -> dict[str, np.ndarray]:
        """Measured per-layer rates, to place a network on the order/chaos diagram.

        Returns arrays of length L (layers 1..L) with standard errors (delta method with
        the covariance measured between layers of the same networks):

        * ``chi_g`` = E[g^l] / E[g^{l+1}], the backward gain through layer l + 1 (NaN at
          layer L); its infinite-width value ``chi_g_theory`` is n_{l+1} Var(W) E[phi'(z^l)^2],
          the chi_1 of mean-field theory at the fixed point. Above 1 gradients explode
          towards the input, below 1 they vanish.
        * ``chi_c`` = (E[c^l] - c*) / (E[c^{l-1}] - c*) (c^0: the inputs' cosine): how fast
          correlations approach the fixed point c*. Near c* it is the slope of the
          correlation map (``theory.correlation_fixed_point``); ``chi_c_theory`` is the same
          ratio of the theory's c^l. ``c_star`` defaults to the theory's c* when all layers
          share one sigma_w^2 (else give it). NaN without input pairs.
        """
        depth = self.network.depth
        nan = np.full(depth, np.nan)
        out = {"layer": np.arange(1, depth + 1)}
        chi_g, chi_g_se = ratio_of_means(self.stats[:, LINK])
        theory = self._columns["g_theory"]
        out["chi_g"] = np.append(chi_g[:-1], np.nan) if self.gradients else nan
        out["chi_g_se"] = np.append(chi_g_se[:-1], np.nan) if self.gradients else nan
        with np.errstate(divide="ignore", invalid="ignore"):
            out["chi_g_theory"] = np.append(theory[:-1] / theory[1:], np.nan)
        if self.input_correlation is None:
            out.update(chi_c=nan, chi_c_se=nan, chi_c_theory=nan)
            return out
        if c_star is None:
            sw2 = self.network.sigma_w2
            if not np.allclose(sw2, sw2[0], rtol=1e-12):
                raise ValueError("the layers have different sigma_w^2: pass c_star")
            c_star = correlation_fixed_point(self.network.activation_fn, float(sw2[0]),
                                             self.network.bias_std ** 2)[0]
        out["chi_c"], out["chi_c_se"] = ratio_of_means(self.stats[:, NET], c_star)
        c = np.concatenate([[self.input_correlation], self._columns["c_theory"]])
        with np.errstate(divide="ignore", invalid="ignore"):
            out["chi_c_theory"] = (c[1:] - c_star) / (c[:-1] - c_star)
        return out

    @property
    def columns(self) -> list[str]:
        """Names of the per-layer columns."""
        return list(self._columns)

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self._columns[name]
        except KeyError:
            raise KeyError(f"no column {name!r}; columns are {', '.join(self._columns)}") from None

    def __getattr__(self, name: str) -> np.ndarray:
        columns = self.__dict__.get("_columns", {})
        if name in columns:
            return columns[name]
        raise AttributeError(f"Result has no attribute {name!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._columns))

    def to_dict(self) -> dict:
        """A dict that ``json.dumps(..., allow_nan=False)`` accepts; :meth:`from_dict` inverts it.

        Metadata, ``columns`` (lists per layer; non-finite column values become None, as
        pandas writes them) and ``stats``, the accumulator state of shape (L, 3, S) from
        which :meth:`from_dict` recomputes every column. ``stats`` round-trips bitwise:
        its finite entries are written as floats, NaN as None, +-inf as "inf" / "-inf".
        """
        meta = {"network": self.network.to_dict(), "trials": self.trials, "seed": self.seed,
                "engine": self.engine, "elapsed_s": self.elapsed_s, "compile_s": self.compile_s,
                "inputs_per_network": self.inputs_per_network, "gradients": self.gradients,
                "input_q0": self.input_q0, "input_correlation": self.input_correlation,
                "partial": self.partial, "warnings": self.warnings}
        if self.input_q0_rows is not None:  # lossless: JSON floats round-trip exactly
            values, counts = self.input_q0_rows
            meta["input_q0_rows"] = {"values": values.tolist(), "counts": counts.tolist()}
        columns = {k: [None if isinstance(x, float) and not math.isfinite(x) else x
                       for x in v.tolist()] for k, v in self._columns.items()}
        stats = [[[json_float(x) for x in row] for row in layer] for layer in self.stats.tolist()]
        return {**meta, "columns": columns, "stats": stats}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Result":
        """Rebuild a Result from :meth:`to_dict` output (columns are recomputed from stats).

        Every key is checked: a missing, mistyped or out-of-range one raises ValueError
        (TypeError for a wrong type) naming it. ``columns`` is not read; ``partial`` may be
        left out (files written before it existed), meaning False.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"a result dict (from Result.to_dict) is needed, got "
                            f"{type(data).__name__}")
        keys = ("network", "stats", "trials", "seed", "engine", "elapsed_s",
                "inputs_per_network", "gradients", "input_q0")
        missing = [k for k in keys if k not in data]
        if missing:
            raise ValueError(f"result dict lacks the key {missing[0]!r}")
        if not isinstance(data["network"], Mapping):
            raise ValueError(f"network must be a dict as made by Network.to_dict(), "
                             f"got {data['network']!r}")
        try:
            net = Network(**data["network"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"network: {err}") from None
        trials = check_int("trials", data["trials"], 1, 2 ** 63 - 1)
        k = check_int("inputs_per_network", data["inputs_per_network"], 1, trials)
        if trials % k:
            raise ValueError(f"inputs_per_network ({k}) must divide trials ({trials})")
        if not isinstance(data["gradients"], bool):
            raise TypeError(f"gradients must be true or false, got {data['gradients']!r}")
        if not isinstance(data["engine"], str):
            raise TypeError(f"engine must be an engine name, got {data['engine']!r}")
        if not data["engine"]:
            raise ValueError("engine must be an engine name, got ''")
        kwargs = {}
        if not isinstance(data.get("partial", False), bool):
            raise TypeError(f"partial must be true or false, got {data['partial']!r}")
        kwargs["partial"] = data.get("partial", False)
        correlation = data.get("input_correlation")
        if correlation is not None:
            kwargs["input_correlation"] = check_real("input_correlation", correlation, -1.0,
                                                     strict=False)
            if kwargs["input_correlation"] > 1.0:
                raise ValueError(f"input_correlation must be in [-1, 1], got {correlation}")
        rows = _q0_rows_from_json(data.get("input_q0_rows"))
        if rows is not None:
            kwargs["input_q0_rows"] = rows
        stats = _stats_from_json(data["stats"], net.depth)
        _check_consistent(stats, trials, k, kwargs.get("input_correlation"), data["engine"])
        return cls(net, stats, trials=trials,
                   seed=check_int("seed", data["seed"], 0, 2 ** 64 - 1), engine=data["engine"],
                   elapsed_s=check_real("elapsed_s", data["elapsed_s"], 0.0, strict=False),
                   compile_s=check_real("compile_s", data.get("compile_s", 0.0), 0.0,
                                        strict=False),
                   inputs_per_network=k, gradients=data["gradients"],
                   input_q0=check_real("input_q0", data["input_q0"], 0.0, strict=False), **kwargs)

    def to_json(self, path: "str | os.PathLike | None" = None) -> "str | None":
        """Strict JSON text of :meth:`to_dict`, or write it atomically to ``path`` (returns None).

        The path is checked before anything is written (see :mod:`fastvar._files`).
        """
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        if path is None:
            return text
        write_file(path, text + "\n")
        return None

    def to_csv(self, path: "str | os.PathLike") -> None:
        """Write the per-layer columns as CSV (one row per layer), atomically.

        Floats are written exactly ('nan', 'inf' where non-finite), bools as true/false. A
        partial result (:attr:`partial`) has a last column ``partial``, true on every row, so
        that a file of an interrupted run cannot pass for a complete one.
        """
        names = self.columns
        mark = ["partial"] if self.partial else []
        lines = [",".join(names + mark)]
        for i in range(self.network.depth):
            lines.append(",".join([_csv_cell(self._columns[c][i]) for c in names]
                                  + ["true"] * len(mark)))
        write_file(path, "\n".join(lines) + "\n")

    def plot(self, ax=None, **kwargs):
        """q^l and g^l per layer, Monte Carlo +- SE and theory (see :func:`fastvar.plot`)."""
        from .plotting import plot

        return plot(self, ax=ax, **kwargs)

    def to_pandas(self):
        """The columns as a pandas DataFrame indexed by layer (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install 'fastvar[pandas]'") from None
        return pd.DataFrame(self._columns).set_index("layer")

    def default_columns(self, width: int = TABLE_WIDTH) -> list[str]:
        """The columns :meth:`table` shows by default: what differs between them (z_var
        equals q_mean and grad_var g_mean when z has mean 0), within ``width`` characters."""
        names = ["q_mean", "q_theory"]
        names += ["c_mean", "c_theory"] if self.input_correlation is not None else []
        names += ["g_mean", "g_theory"] if self.gradients else []
        for extra in ("a_var", "dead_frac", "z_kurt"):  # most telling first
            if extra == "dead_frac" and not (self._columns["dead_frac"] > 0).any():
                continue
            if len(self._table_lines(names + [extra], None)[0]) <= width:
                names.append(extra)
        return names

    def table(self, columns: "Sequence[str] | None" = None,
              max_rows: "int | None" = 40) -> str:
        """An aligned per-layer text table with +- standard errors.

        ``columns`` names Result columns to show after layer and width (default:
        :meth:`default_columns`, which fit 100 characters). A column with a ``*_se`` partner
        prints as value±SE; a ``*_theory`` column prints the theory and, in brackets, how
        many SE the measurement lies from it. ``max_rows`` (None: all) keeps the first and
        last layers of a deeper network. Layers whose statistics are incomplete or
        overflowed are marked * and explained by warning lines under the table (see
        :attr:`warnings`)."""
        columns = self.default_columns() if columns is None else list(columns)
        unknown = [name for name in columns if name not in self._columns]
        if unknown:
            raise ValueError(f"no column {unknown[0]!r}; columns are {', '.join(self._columns)}")
        if max_rows is not None:
            max_rows = check_int("max_rows", max_rows, 2, 1 << 62)
        lines = self._table_lines(columns, max_rows)
        lines += [f"warning: {w}" for w in self.warnings]
        note = self._theory_note()
        if note:
            lines.append(f"note: {note}")
        return "\n".join(lines)

    def _cell(self, name: str, i: int) -> str:
        c = self._columns
        value = c[name][i]
        if c[name].dtype.kind == "b":
            return "yes" if value else "no"
        if c[name].dtype.kind in "iu":
            return str(value)
        if name.endswith("_theory"):  # the theory, and how many SE the measurement is off
            measured = name[:-len("_theory")] + "_mean"
            se = c[measured + "_se"][i]
            with np.errstate(invalid="ignore", over="ignore"):
                gap = (c[measured][i] - value) / se if se > 0 else np.nan
            if not np.isfinite(gap):
                return f"{value:.4g}"
            return f"{value:.4g} ({gap:+.1f})" if abs(gap) < 1e4 else f"{value:.4g} ({gap:+.1e})"
        if not np.isfinite(value):
            return str(value)
        if name + "_se" in c:
            return f"{value:.4g}±{c[name + '_se'][i]:.2g}"
        return f"{value:.4g}"

    def _table_lines(self, columns: list[str], max_rows: "int | None") -> list[str]:
        heads = ["layer", "width"] + columns
        c = self._columns
        rows = [[f"{c['layer'][i]}{'' if c['complete'][i] else '*'}", str(c["width"][i])]
                + [self._cell(name, i) for name in columns] for i in range(self.network.depth)]
        if max_rows is not None and len(rows) > max_rows:
            half = max_rows // 2
            rows = rows[:half] + [["..."] * len(heads)] + rows[-half:]
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(heads)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
        return lines + ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]

    @property
    def warnings(self) -> list[str]:
        """Why some statistics are incomplete or overflowed (empty when all are complete);
        the layers concerned have ``complete`` False and are marked * in :meth:`table`."""
        return quality_warnings(self._columns)

    def _theory_note(self) -> str:
        """Why q departs from the theory by > 5 SE at some complete layers, if it does."""
        c = self._columns
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            far = c["complete"] & (np.abs(c["q_mean"] - c["q_theory"]) > 5 * c["q_mean_se"])
            spread = float(np.nanmax(c["q_var"][far] / c["q_mean"][far] ** 2, initial=0.0))
        if not far.any():
            return ""
        where = f"q departs from the theory by > 5 SE at {_layers(far)}"
        heavy = (f"; q over networks is heavy-tailed there (relative variance up to {spread:.3g}): "
                 "its sample mean usually falls short of the truth and its SE is unreliable, "
                 "and more trials help only slowly")
        net = self.network
        if net.activation_fn.name in _EXACT_MEAN_ACTIVATIONS and net.norm is None:
            return (f"{where}; for {self.network.activation} the theory gives E[q] exactly at "
                    f"any width, so the gap is sampling error{heavy if spread > 1 else ''}")
        if spread > 1:
            return where + heavy
        return (f"{where}; the theory is the infinite-width limit; at finite width n the gap "
                "shrinks like 1/n")

    def _head(self) -> str:
        compiled = f" (+ {self.compile_s:.3g} s compiling)" if self.compile_s >= 0.5 else ""
        done = "PARTIAL result (interrupted): only " if self.partial else ""
        return (f"fastvar Result: {self.network.describe()}\n{done}{self.trials} trials "
                f"({self.inputs_per_network} per network), seed {self.seed}, engine {self.engine}, "
                f"{self.elapsed_s:.3g} s{compiled}; values ± standard error, theory "
                "(measurement - theory in SE)")

    def __repr__(self) -> str:
        return self._head() + "\n" + self.table()

    def _repr_html_(self) -> str:
        """The table for notebooks (Jupyter shows it instead of the text)."""
        import html

        return f"<pre>{html.escape(repr(self))}</pre>"
