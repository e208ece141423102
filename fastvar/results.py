"""The Result of a simulation: per-layer columns with standard errors, and their export.

Columns are derived from the merged stats array (L, 3, STATS_SIZE) of
:mod:`fastvar.kernels.accumulators`. Standard errors come from the variation between
independent networks (DESIGN.md section 2), by the delta method where needed.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

import numpy as np

from .kernels.accumulators import A, DELTA, MOMENTS, NONFINITE, PAIR, WELFORD, Z
from .moments import shape_statistics
from .network import Network
from .theory import gradient_map, variance_map

COLUMNS = ("layer", "width", "z_mean", "z_var", "z_var_se", "z_skew", "z_kurt",
           "a_mean", "a_var", "a_var_se", "q_mean", "q_mean_se", "q_var",
           "grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var",
           "nonfinite_z", "nonfinite_a", "nonfinite_delta", "overflow", "complete")
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
    """Mean and variance (ddof=1) of the per-trial lengths ||x||^2 / n."""
    n, mean, m2 = (row[:, WELFORD + i] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return {"mean": np.where(n > 0, mean, np.nan), "var": m2 / (n - 1.0)}


def compute_columns(stats: np.ndarray, widths, gradients: bool) -> dict[str, np.ndarray]:
    """All result columns from a merged stats array of shape (L, 3, STATS_SIZE).

    Besides the statistics, per layer: ``nonfinite_z/_a/_delta`` count the NaN or infinite
    unit values left out; ``overflow`` is True where the accumulated sums themselves
    overflowed (values beyond about 1e154, or 1e77 for the fourth moments); ``complete``
    is True where neither happened, i.e. every statistic of the layer uses every value.
    """
    z, a, d = stats[:, Z], stats[:, A], stats[:, DELTA]
    zp, ap, dp = _pooled(z), _pooled(a), _pooled(d)
    zs, as_, ds = _between_networks(z), _between_networks(a), _between_networks(d)
    zq, dq = _lengths(z), _lengths(d)
    used = stats if gradients else stats[:, :DELTA]
    bad = used[..., NONFINITE].sum(axis=1)
    overflow = ~np.isfinite(np.delete(used, NONFINITE, axis=2)).all(axis=(1, 2))
    cols = {
        "layer": np.arange(1, stats.shape[0] + 1), "width": np.asarray(widths[1:]),
        "z_mean": zp["mean"], "z_var": zp["var"], "z_var_se": zs["var_se"],
        "z_skew": zp["skew"], "z_kurt": zp["kurt"],
        "a_mean": ap["mean"], "a_var": ap["var"], "a_var_se": as_["var_se"],
        "q_mean": zq["mean"], "q_mean_se": zs["sq_se"], "q_var": zq["var"],
        "grad_var": dp["var"], "grad_var_se": ds["var_se"],
        "g_mean": dq["mean"], "g_mean_se": ds["sq_se"], "g_var": dq["var"],
        "nonfinite_z": z[:, NONFINITE].astype(np.int64),
        "nonfinite_a": a[:, NONFINITE].astype(np.int64),
        "nonfinite_delta": d[:, NONFINITE].astype(np.int64),
        "overflow": overflow, "complete": (bad == 0) & ~overflow,
    }
    if not gradients:
        for name in GRADIENT_COLUMNS:
            cols[name] = np.full(stats.shape[0], np.nan)
    return cols


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
    return lines


def _write_atomic(path: "str | os.PathLike", text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename: never half-written."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".fastvar-", suffix=".tmp")
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror}") from None
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def _json_value(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


class Result:
    """Per-layer statistics of a simulation.

    Every column is a NumPy array of length L (layers 1..L), reachable as
    ``res["z_var"]`` or ``res.z_var``; ``res.columns`` lists them. ``*_se`` columns are
    standard errors from the variation between independent networks. Gradient columns
    are NaN when the run had ``gradients=False``. ``q_theory`` and ``g_theory`` are the
    infinite-width predictions of ``q_mean`` and ``g_mean`` (:mod:`fastvar.theory`).

    Nothing is silently wrong: NaN or infinite values (overflow) are left out of the
    statistics and counted per layer in ``nonfinite_z``, ``nonfinite_a`` and
    ``nonfinite_delta``; ``overflow`` marks layers whose accumulated sums overflowed;
    ``complete`` is False for either. :attr:`warnings` explains them in words, and
    :func:`fastvar.simulate` issues an :class:`IncompleteStatisticsWarning`.

    Attributes: ``network``, ``trials``, ``seed``, ``engine``, ``elapsed_s`` (seconds),
    ``inputs_per_network``, ``gradients``, ``input_q0`` (mean squared input entry, the
    q^0 of the theory), ``stats`` (the merged accumulator state, shape (L, 3, S)).
    """

    def __init__(self, network: Network, stats: np.ndarray, *, trials: int, seed: int, engine: str,
                 elapsed_s: float, inputs_per_network: int = 1, gradients: bool = True,
                 input_q0: float = 1.0) -> None:
        self.network = network
        self.stats = np.asarray(stats, dtype=np.float64)
        self.trials, self.seed, self.engine = int(trials), int(seed), str(engine)
        self.elapsed_s = float(elapsed_s)
        self.inputs_per_network, self.gradients = int(inputs_per_network), bool(gradients)
        self.input_q0 = float(input_q0)
        self._columns = compute_columns(self.stats, network.widths, self.gradients)
        self._columns["q_theory"] = variance_map(network, self.input_q0)
        self._columns["g_theory"] = (gradient_map(network, self.input_q0) if self.gradients
                                     else np.full(network.depth, np.nan))

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
        """JSON-safe dict (NaN becomes None); :meth:`from_dict` rebuilds the Result."""
        meta = {"network": self.network.to_dict(), "trials": self.trials, "seed": self.seed,
                "engine": self.engine, "elapsed_s": self.elapsed_s,
                "inputs_per_network": self.inputs_per_network, "gradients": self.gradients,
                "input_q0": self.input_q0, "warnings": self.warnings}
        columns = {k: [_json_value(x) for x in v.tolist()] for k, v in self._columns.items()}
        return {**meta, "columns": columns, "stats": self.stats.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        """Rebuild a Result from :meth:`to_dict` output (columns are recomputed from stats)."""
        try:
            return cls(Network(**data["network"]), np.asarray(data["stats"], dtype=np.float64),
                       trials=data["trials"], seed=data["seed"], engine=data["engine"],
                       elapsed_s=data["elapsed_s"], inputs_per_network=data["inputs_per_network"],
                       gradients=data["gradients"], input_q0=data["input_q0"])
        except KeyError as err:
            raise ValueError(f"result dict lacks the key {err.args[0]!r}") from None

    def to_json(self, path: "str | os.PathLike | None" = None) -> "str | None":
        """The JSON text, or write it atomically to ``path`` (then returns None)."""
        text = json.dumps(self.to_dict(), indent=1)
        if path is None:
            return text
        _write_atomic(path, text + "\n")
        return None

    def to_csv(self, path: "str | os.PathLike") -> None:
        """Write the per-layer columns as CSV (one row per layer), atomically."""
        names = self.columns
        lines = [",".join(names)]
        for i in range(self.network.depth):
            lines.append(",".join(repr(float(self._columns[c][i])) if self._columns[c].dtype.kind == "f"
                                  else str(self._columns[c][i]) for c in names))
        _write_atomic(path, "\n".join(lines) + "\n")

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

    def table(self, max_rows: int = 40) -> str:
        """An aligned per-layer text table of the main columns with +- standard errors.

        Layers whose statistics are incomplete or overflowed are marked * and explained
        by warning lines under the table (see :attr:`warnings`)."""
        def pm(value, se):
            return "nan" if not np.isfinite(value) else f"{value:.4g} ± {se:.2g}"

        def vs(value, theory, se):  # the theory, and how many SE the measurement lies from it
            return f"{theory:.4g} ({(value - theory) / se:+.1f} SE)" if se > 0 else f"{theory:.4g}"

        heads = ["layer", "width", "q_mean", "q_theory", "z_var", "z_kurt", "a_var"]
        if self.gradients:
            heads += ["grad_var", "g_mean", "g_theory"]
        c = self._columns
        rows = []
        for i in range(self.network.depth):
            mark = "" if c["complete"][i] else "*"
            row = [f"{c['layer'][i]}{mark}", str(c["width"][i]), pm(c["q_mean"][i], c["q_mean_se"][i]),
                   vs(c["q_mean"][i], c["q_theory"][i], c["q_mean_se"][i]),
                   pm(c["z_var"][i], c["z_var_se"][i]), f"{c['z_kurt'][i]:.3g}",
                   pm(c["a_var"][i], c["a_var_se"][i])]
            if self.gradients:
                row += [pm(c["grad_var"][i], c["grad_var_se"][i]), pm(c["g_mean"][i], c["g_mean_se"][i]),
                        vs(c["g_mean"][i], c["g_theory"][i], c["g_mean_se"][i])]
            rows.append(row)
        if len(rows) > max_rows:
            half = max_rows // 2
            rows = rows[:half] + [["..."] * len(heads)] + rows[-half:]
        widths = [max(len(h), *(len(r[j]) for r in rows)) for j, h in enumerate(heads)]
        lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths))]
        lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows]
        lines += [f"warning: {w}" for w in self.warnings]
        note = self._theory_note()
        if note:
            lines.append(f"note: {note}")
        return "\n".join(lines)

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
        if self.network.activation_fn.name in _EXACT_MEAN_ACTIVATIONS:
            return (f"{where}; for {self.network.activation} the theory gives E[q] exactly at "
                    f"any width, so the gap is sampling error{heavy if spread > 1 else ''}")
        if spread > 1:
            return where + heavy
        return (f"{where}; the theory is the infinite-width limit; at finite width n the gap "
                "shrinks like 1/n")

    def __repr__(self) -> str:
        head = (f"fastvar Result: {self.network.describe()}\n{self.trials} trials "
                f"({self.inputs_per_network} per network), seed {self.seed}, engine {self.engine}, "
                f"{self.elapsed_s:.3g} s; values ± standard error")
        return head + "\n" + self.table()
