"""The Result of a simulation: per-layer columns with standard errors, and their export.

Columns are derived from the merged stats array (L, 3, STATS_SIZE) of
:mod:`fastvar.kernels.accumulators`. Standard errors come from the variation between
independent networks (each network's per-unit mean and mean square), by the delta method
where needed.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Any

import numpy as np

from .kernels.accumulators import A, DELTA, MOMENTS, NONFINITE, PAIR, WELFORD, Z
from .network import Network
from .theory import mean_field_maps, variance_map

COLUMNS = ("layer", "width", "z_mean", "z_var", "z_var_se", "z_skew", "z_kurt",
           "a_mean", "a_var", "a_var_se", "q_mean", "q_mean_se", "q_var",
           "grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var", "nonfinite")
GRADIENT_COLUMNS = ("grad_var", "grad_var_se", "g_mean", "g_mean_se", "g_var")


def _pooled(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, variance, skewness, excess kurtosis of pooled unit values; rows (L, S)."""
    n, mean, m2, m3, m4 = (row[:, MOMENTS + i] for i in range(5))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return {"mean": np.where(n > 0, mean, np.nan), "var": np.where(n > 0, m2 / n, np.nan),
                "skew": np.sqrt(n) * m3 / m2 ** 1.5, "kurt": n * m4 / (m2 * m2) - 3.0}


def _between_networks(row: np.ndarray) -> dict[str, np.ndarray]:
    """SEs from the per-network (mean, mean square) pairs: of the variance and of E[x^2]."""
    n, mx, _, cxx, cxy, cyy = (row[:, PAIR + i] for i in range(6))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = 1.0 / ((n - 1.0) * n)  # sample covariance / n: covariance of the means
        var_se = np.sqrt(np.maximum(4 * mx * mx * cxx - 4 * mx * cxy + cyy, 0.0) * scale)
        return {"var_se": var_se, "sq_se": np.sqrt(cyy * scale)}


def _lengths(row: np.ndarray) -> dict[str, np.ndarray]:
    """Mean and variance (ddof=1) of the per-trial lengths ||x||^2 / n."""
    n, mean, m2 = (row[:, WELFORD + i] for i in range(3))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return {"mean": np.where(n > 0, mean, np.nan), "var": m2 / (n - 1.0)}


def compute_columns(stats: np.ndarray, widths, gradients: bool) -> dict[str, np.ndarray]:
    """All result columns from a merged stats array of shape (L, 3, STATS_SIZE)."""
    z, a, d = stats[:, Z], stats[:, A], stats[:, DELTA]
    zp, ap, dp = _pooled(z), _pooled(a), _pooled(d)
    zs, as_, ds = _between_networks(z), _between_networks(a), _between_networks(d)
    zq, dq = _lengths(z), _lengths(d)
    cols = {
        "layer": np.arange(1, stats.shape[0] + 1), "width": np.asarray(widths[1:]),
        "z_mean": zp["mean"], "z_var": zp["var"], "z_var_se": zs["var_se"],
        "z_skew": zp["skew"], "z_kurt": zp["kurt"],
        "a_mean": ap["mean"], "a_var": ap["var"], "a_var_se": as_["var_se"],
        "q_mean": zq["mean"], "q_mean_se": zs["sq_se"], "q_var": zq["var"],
        "grad_var": dp["var"], "grad_var_se": ds["var_se"],
        "g_mean": dq["mean"], "g_mean_se": ds["sq_se"], "g_var": dq["var"],
        "nonfinite": z[:, NONFINITE].astype(np.int64),
    }
    if not gradients:
        for name in GRADIENT_COLUMNS:
            cols[name] = np.full(stats.shape[0], np.nan)
    return cols


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


def _q0_rows(entry: "dict | None") -> "tuple[list, list] | None":
    """The (values, counts) pair of a to_dict ``input_q0_rows`` entry (None if absent)."""
    if entry is None:
        return None
    return entry["values"], entry["counts"]


class Result:
    """Per-layer statistics of a simulation.

    Every column is a NumPy array of length L (layers 1..L), reachable as
    ``res["z_var"]`` or ``res.z_var``; ``res.columns`` lists them. ``*_se`` columns are
    standard errors from the variation between independent networks. Gradient columns
    are NaN when the run had ``gradients=False``. ``q_theory`` and ``g_theory`` are the
    infinite-width predictions of ``q_mean`` and ``g_mean`` (:mod:`fastvar.theory`): for a
    data set, the average over its rows of the maps started at each row's own length (not
    the maps of the mean length, which differ for curved activations such as tanh).

    Attributes: ``network``, ``trials``, ``seed``, ``engine``, ``elapsed_s`` (seconds),
    ``inputs_per_network``, ``gradients``, ``input_q0`` (mean squared input entry
    ||x||^2 / n_0, averaged over a data set's rows), ``input_q0_rows`` (a data set's
    per-row lengths as a pair of arrays: sorted distinct values and how many rows have
    each; None for fresh normal inputs and a single fixed input), ``stats`` (the merged
    accumulator state, shape (L, 3, S)).
    """

    def __init__(self, network: Network, stats: np.ndarray, *, trials: int, seed: int, engine: str,
                 elapsed_s: float, inputs_per_network: int = 1, gradients: bool = True,
                 input_q0: float = 1.0,
                 input_q0_rows: "tuple[np.ndarray, np.ndarray] | None" = None) -> None:
        self.network = network
        self.stats = np.asarray(stats, dtype=np.float64)
        self.trials, self.seed, self.engine = int(trials), int(seed), str(engine)
        self.elapsed_s = float(elapsed_s)
        self.inputs_per_network, self.gradients = int(inputs_per_network), bool(gradients)
        self.input_q0 = float(input_q0)
        self.input_q0_rows = None
        start: "dict[str, Any]" = {"q0": self.input_q0}
        if input_q0_rows is not None:
            values, counts = (np.asarray(v, dtype=np.float64) for v in input_q0_rows)
            self.input_q0_rows = (values, counts.astype(np.int64))
            start = {"q0": values, "counts": counts}
        self._columns = compute_columns(self.stats, network.widths, self.gradients)
        if self.gradients:
            self._columns["q_theory"], self._columns["g_theory"] = mean_field_maps(network, **start)
        else:
            self._columns["q_theory"] = variance_map(network, **start)
            self._columns["g_theory"] = np.full(network.depth, np.nan)

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
                "input_q0": self.input_q0}
        if self.input_q0_rows is not None:  # lossless: JSON floats round-trip exactly
            values, counts = self.input_q0_rows
            meta["input_q0_rows"] = {"values": values.tolist(), "counts": counts.tolist()}
        columns = {k: [_json_value(x) for x in v.tolist()] for k, v in self._columns.items()}
        return {**meta, "columns": columns, "stats": self.stats.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "Result":
        """Rebuild a Result from :meth:`to_dict` output (columns are recomputed from stats)."""
        try:
            return cls(Network(**data["network"]), np.asarray(data["stats"], dtype=np.float64),
                       trials=data["trials"], seed=data["seed"], engine=data["engine"],
                       elapsed_s=data["elapsed_s"], inputs_per_network=data["inputs_per_network"],
                       gradients=data["gradients"], input_q0=data["input_q0"],
                       input_q0_rows=_q0_rows(data.get("input_q0_rows")))
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
        """An aligned per-layer text table of the main columns with +- standard errors."""
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
            row = [str(c["layer"][i]), str(c["width"][i]), pm(c["q_mean"][i], c["q_mean_se"][i]),
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
        bad = int(c["nonfinite"].sum())
        if bad:
            lines.append(f"warning: {bad} non-finite pre-activations were left out of the statistics")
        with np.errstate(divide="ignore", invalid="ignore"):
            far = np.abs(c["q_mean"] - c["q_theory"]) > 5 * c["q_mean_se"]
        if far.any():
            lines.append("note: q departs from the theory by > 5 SE at some layers; the theory is the "
                         "infinite-width limit; at finite width n the gap shrinks like 1/n")
        overflow = ~np.isfinite(c["q_mean"]) | ~np.isfinite(c["z_var"])
        if overflow.any():
            lines.append(f"warning: the statistics overflow from layer {int(c['layer'][overflow][0])} "
                         "on (values beyond about 1e154 square to inf)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        head = (f"fastvar Result: {self.network.describe()}\n{self.trials} trials "
                f"({self.inputs_per_network} per network), seed {self.seed}, engine {self.engine}, "
                f"{self.elapsed_s:.3g} s; values ± standard error")
        return head + "\n" + self.table()
