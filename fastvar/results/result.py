"""The Result of a simulation: per-layer columns with standard errors, and their export.

The class gathers what its neighbours compute: :mod:`fastvar.results.columns` (statistics,
standard errors, theory), :mod:`.render` (table and notes), :mod:`.files` (dict, JSON, CSV).
"""
from __future__ import annotations

import math
import os
from typing import Any, Mapping, Sequence

import numpy as np

from ..network import Network
from . import files, render
from .columns import (Columns, compute_columns, network_counts, quality_warnings, slopes,
                      theory_columns)
from .histogram import BINS, QUANTITIES, Histogram, edges_of, layer_histogram
from . import jacobian as jac_columns


class Result:
    """Per-layer statistics of a simulation.

    Every column is a NumPy array of length L (layers 1..L), reachable as
    ``res["z_var"]`` or ``res.z_var``; ``res.columns`` lists them. ``*_se`` columns are
    standard errors from the variation between independent networks. Gradient columns
    are NaN when the run had ``gradients=False``. ``q_theory`` and ``g_theory`` are the
    infinite-width predictions of ``q_mean`` and ``g_mean`` (:mod:`fastvar.theory`): for a
    data set, the average over its rows of the maps started at each row's own length (not
    the maps of the mean length, which differ for curved activations such as tanh).
    ``z_kurt_theory``, ``q_var_theory`` and ``g_var_theory`` are the finite-width theory of
    ``z_kurt``, ``q_var`` and ``g_var`` (:mod:`fastvar.finite_width`: exact for linear,
    ReLU and leaky ReLU, 1/n otherwise; NaN where none applies, the table's note says
    why). The theory columns are computed on first use (a deep network's take a while).

    Nothing is silently wrong: NaN or infinite values (overflow) are left out of the
    statistics and counted per layer in ``nonfinite_z``, ``nonfinite_a`` and
    ``nonfinite_delta``; ``overflow`` marks layers whose accumulated sums overflowed;
    ``complete`` is False for either. :attr:`warnings` explains them in words, and
    :func:`fastvar.simulate` issues an :class:`IncompleteStatisticsWarning`.

    Nor are error bars shown as reliable where they are not: an SE is sqrt(s^2 / N) from
    the sample variance s^2 of per-network values over N networks, and where those values
    are heavy-tailed (q^l at width 1 is a product of chi-square factors) most samples miss
    the few networks that carry most of the variance, so s^2 and the SE come out too small.
    ``q_heavy_tails`` marks layers where the per-network q^l or m^l are so heavy-tailed
    (the SEs of ``q_mean``, ``z_var``, ``m_mean``, ``a_var`` are then unreliable),
    ``g_heavy_tails`` the same for g^l (``g_mean``, ``grad_var``). Criterion: the
    log-normal with the measured mean and relative variance v = s^2 / mean^2 (ln q^l is a
    sum over layers) draws half of E[x^2] from above exp(mu + 2 sigma^2), sigma^2 =
    ln(1 + v), where a fraction Phi(-2 sigma) of networks lie; a layer is flagged when
    fewer than two networks are expected there, N Phi(-2 sigma) < 2 (the sample then
    misses them altogether in over 14% of runs), and v > 1: v above 6.9 for N = 1000,
    14 for 4000, 67 for 10^5. Such layers are marked ! in :meth:`table` and named in
    :attr:`warnings`; the flags are recomputed from ``stats``, so files of earlier versions
    get them too.

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

    With ``simulate(histograms=True)``: :meth:`histogram` gives a layer's
    :class:`~fastvar.Histogram` of z, a or delta; ``histogram_counts`` (int64, shape
    (L, 3, 192): z, a, delta; below, 190 bins, above) and ``histogram_scales`` (float64,
    (L, 3): each layer's theory scale, NaN where the bins are in absolute units) hold them
    all (both None without histograms; see :mod:`fastvar.results.histogram`).

    With ``simulate(jacobian=True)``: ``jac_m1``, ``jac_spread``, ``jac_max`` (± ``*_se``),
    ``jac_m1_theory``, ``jac_spread_theory``, ``jac_nonfinite``, ``jac_undefined`` and
    ``jac_heavy_tails`` (as ``q_heavy_tails``, for the per-network m1), the
    spectrum of the input-output Jacobian per layer (:mod:`fastvar.results.jacobian`), from
    ``jacobian_stats`` (float64, (L, S): its accumulator row per layer; None without, and
    then no Jacobian columns).

    A Result is made by :func:`fastvar.simulate` or read by :meth:`from_dict` and
    :func:`fastvar.load`; its parameters are kept as attributes of the same names
    (``histograms`` as ``histogram_counts`` and ``histogram_scales``).

    Parameters
    ----------
    network : Network
        The network simulated.
    stats : numpy.ndarray
        The merged accumulator state, shape (L, ROWS, S) (see
        :mod:`fastvar.kernels.accumulators`); every column is computed from it.
    trials : int
        Forward passes done (for a ``partial`` result, those done before the interruption).
    seed : int
        Seed of the random streams.
    engine : str
        The engine that ran it.
    elapsed_s : float
        Seconds of the run itself (wall clock); for a configuration of a sweep on a Dask
        cluster, which shares the cluster's time with the others, the sum of its tasks'
        engine calls on the workers.
    compile_s : float
        Seconds spent compiling or loading the kernels first.
    inputs_per_network : int
        Inputs sharing each drawn network.
    gradients : bool
        Whether the backward pass ran (else the gradient columns are NaN).
    input_q0 : float
        Mean squared input entry ||x||^2 / n_0, averaged over a data set's rows.
    input_q0_rows : tuple of two numpy.ndarray or None
        A data set's per-row lengths: sorted distinct values of ||x_i||^2 / n_0 and how
        many rows have each; None for fresh normal inputs and a single fixed input.
    input_correlation : float or None
        The input pairs' cosine c0; None (or NaN) without pairs.
    partial : bool
        True for the blocks completed before an interruption (see
        :class:`fastvar.Interrupted`).
    unverified : str or None
        Why a Result read with ``verify=False`` from a file that failed its checks may not
        be what fastvar computed (see :attr:`verified`); None otherwise.
    histograms : tuple of two numpy.ndarray or None
        ``(histogram_counts, histogram_scales)``, shapes (L, 3, 192) and (L, 3); None
        without histograms.
    normal_inputs : bool or None
        True: fresh N(0, I) inputs per trial; False: a fixed input or a data set's rows;
        None: not recorded (files of earlier versions; see :attr:`fresh_inputs`).
    jacobian : numpy.ndarray or None
        With ``simulate(jacobian=True)``, the Jacobian's accumulator row per layer, shape
        (L, S) (kept as ``jacobian_stats``); None without.

    Raises
    ------
    ValueError
        Histograms (or Jacobian stats) of another shape than the network's.

    Examples
    --------
    >>> import fastvar
    >>> res = fastvar.simulate(fastvar.mlp(64, 5), 1000, seed=1)
    >>> res["q_mean"].shape
    (5,)
    >>> print(res.table(["q_mean", "q_theory"]))  # doctest: +SKIP
    """

    def __init__(self, network: Network, stats: np.ndarray, *, trials: int, seed: int, engine: str,
                 elapsed_s: float, compile_s: float = 0.0, inputs_per_network: int = 1,
                 gradients: bool = True,
                 input_q0: float = 1.0,
                 input_q0_rows: "tuple[np.ndarray, np.ndarray] | None" = None,
                 input_correlation: "float | None" = None, partial: bool = False,
                 unverified: "str | None" = None,
                 histograms: "tuple[np.ndarray, np.ndarray] | None" = None,
                 normal_inputs: "bool | None" = None,
                 jacobian: "np.ndarray | None" = None) -> None:
        self.network = network
        self.stats = np.asarray(stats, dtype=np.float64)
        self.trials, self.seed, self.engine = int(trials), int(seed), str(engine)
        self.elapsed_s, self.compile_s = float(elapsed_s), float(compile_s)
        self.inputs_per_network, self.gradients = int(inputs_per_network), bool(gradients)
        self.input_q0, self.partial = float(input_q0), bool(partial)
        self.unverified = None if unverified is None else str(unverified)
        self.histogram_counts = self.histogram_scales = None
        if histograms is not None:
            counts, scales = histograms
            self.histogram_counts = np.asarray(counts, dtype=np.int64)
            self.histogram_scales = np.asarray(scales, dtype=np.float64)
            shape = (network.depth, len(QUANTITIES), BINS + 2)
            if self.histogram_counts.shape != shape or self.histogram_scales.shape != shape[:2]:
                raise ValueError(f"histograms must be counts of shape {shape} and scales of "
                                 f"shape {shape[:2]}")
        self.input_correlation = (None if input_correlation is None
                                  or math.isnan(input_correlation) else float(input_correlation))
        self.input_q0_rows = None
        if input_q0_rows is not None:
            values, counts = (np.asarray(v, dtype=np.float64) for v in input_q0_rows)
            self.input_q0_rows = (values, counts.astype(np.int64))
        # a norm over 1 or 2 units is constant (+-1): its gradients are exactly 0, truly
        constant_norm = network.norm is not None and min(network.widths[1:]) <= 2
        networks = self.trials // self.inputs_per_network
        # an all-zero input without biases keeps every value exactly 0, truly
        zero_inputs = self.input_q0 == 0.0 and network.bias_std == 0.0
        # what the warnings say of the networks kept and of underflow
        self._counts = network_counts(self.stats, networks, self.gradients, constant_norm,
                                      zero_inputs)
        measured = compute_columns(self.stats, network.widths, self.gradients,
                                   self.input_correlation is not None,
                                   zero_gradients=constant_norm, networks=networks,
                                   zero_inputs=zero_inputs, counts=self._counts)
        self.normal_inputs = None if normal_inputs is None else bool(normal_inputs)
        self._theory_skipped: list[str] = []
        later = theory_columns(
            network, gradients=self.gradients, input_q0=self.input_q0,
            input_q0_rows=self.input_q0_rows, input_correlation=self.input_correlation,
            normal_inputs=self.fresh_inputs)
        self.jacobian_stats = None
        if jacobian is not None:
            self.jacobian_stats = np.asarray(jacobian, dtype=np.float64)
            if self.jacobian_stats.shape != (network.depth, self.stats.shape[-1]):
                raise ValueError(f"jacobian stats must have shape "
                                 f"{(network.depth, self.stats.shape[-1])}")
            measured.update(jac_columns.measured_columns(self.jacobian_stats, zero_inputs))
            later.update(jac_columns.theory_columns(network, self.input_q0,
                                                    self.input_q0_rows))
        self._columns = Columns(measured, later)
        # the measured columns as a plain dict too: the warnings read a dozen of them in
        # every call, and a Columns lookup is a Python method call
        self._measured = measured

    def slopes(self, c_star: "float | None" = None) -> dict[str, np.ndarray]:
        """Measured per-layer rates, to place a network on the order/chaos diagram.

        Parameters
        ----------
        c_star : float or None
            The fixed point c* of the correlation map that ``chi_c`` measures the approach to;
            default: the theory's c* when all layers share one sigma_w^2 (else give it).

        Returns
        -------
        dict of str to numpy.ndarray
            Arrays of length L (layers 1..L), with standard errors (delta method with the
            covariance measured between layers of the same networks):

            * ``chi_g`` (± ``chi_g_se``) = E[g^l] / E[g^{l+1}], the backward gain through layer
              l + 1 (NaN at layer L); its infinite-width value ``chi_g_theory`` is
              n_{l+1} Var(W) E[phi'(z^l)^2], the chi_1 of mean-field theory at the fixed point.
              Above 1 gradients explode towards the input, below 1 they vanish.
            * ``chi_c`` (± ``chi_c_se``) = (E[c^l] - c*) / (E[c^{l-1}] - c*) (c^0: the inputs'
              cosine): how fast correlations approach the fixed point c*. Near c* it is the
              slope of the correlation map (``theory.correlation_fixed_point``);
              ``chi_c_theory`` is the same ratio of the theory's c^l. NaN without input pairs.
        """
        return slopes(self, c_star)

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

    def histogram(self, layer: int, of: str = "z") -> Histogram:
        """The histogram of one quantity at one layer.

        Parameters
        ----------
        layer : int
            1 to L, as in :meth:`table`.
        of : {"z", "a", "delta"}
            The quantity: pre-activations, activations or backpropagated cotangents.

        Returns
        -------
        Histogram
            Its counts, with edges in value units.

        Raises
        ------
        ValueError
            A result without histograms (run ``simulate(..., histograms=True)``), delta without
            gradients, or a layer or quantity that does not exist.
        """
        if self.histogram_counts is None:
            raise ValueError("this result has no histograms: run simulate(..., "
                             "histograms=True) (fastvar simulate --histograms)")
        if of not in QUANTITIES:
            raise ValueError(f"of must be one of {', '.join(map(repr, QUANTITIES))}, "
                             f"got {of!r}")
        if of == "delta" and not self.gradients:
            raise ValueError("this result has no delta histograms: it ran with "
                             "gradients=False")
        depth = self.network.depth
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) \
                or not 1 <= layer <= depth:
            raise ValueError(f"layer must be a whole number from 1 to {depth} (1-based, as "
                             f"in the table), got {layer!r}")
        return layer_histogram(self.histogram_counts, self.histogram_scales, int(layer), of)

    def to_dict(self) -> dict:
        """A dict that ``json.dumps(..., allow_nan=False)`` accepts; :meth:`from_dict` inverts it.

        Returns
        -------
        dict
            ``format`` (:data:`fastvar.formats.RESULT`), metadata, ``columns`` (lists per layer;
            non-finite column values become None, as pandas writes them) and ``stats``, the
            accumulator state of shape (L, ROWS, S) from which :meth:`from_dict` recomputes every
            column. ``stats`` round-trips bitwise: its finite entries are written as floats, NaN
            as None, +-inf as "inf" / "-inf".
        """
        return files.result_to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], verify: bool = True) -> "Result":
        """Rebuild a Result from :meth:`to_dict` output (columns are recomputed from stats).

        The dict of a file that :meth:`to_json` wrote carries a checksum (that of
        :meth:`to_dict`, in memory, has none). ``columns`` is not read; ``partial`` may be left
        out (files written before it existed), meaning False. The theory columns are computed
        on first use, so reading a deep network is quick.

        Parameters
        ----------
        data : mapping
            The dict (e.g. ``json.load`` of a file :meth:`to_json` wrote).
        verify : bool
            Check the checksum and that the ``layer``/``width`` columns match the network. False
            reads a dict that fails them flagged instead (:attr:`verified` False, a line in
            :attr:`warnings`, kept in its dict).

        Returns
        -------
        Result

        Raises
        ------
        ValueError
            With ``verify``, a checksum that does not match (the file was edited or damaged) or
            columns that contradict the network; always, a missing or out-of-range key (named),
            or a ``format`` this version does not read (a dict without one is a Result of an
            earlier version).
        TypeError
            A key of the wrong type.
        """
        return cls(**files.result_arguments(data, verify))

    def to_json(self, path: "str | os.PathLike | None" = None) -> "str | None":
        """Strict JSON text of :meth:`to_dict` with a ``checksum`` of its content, or a file of it.

        :meth:`from_dict` and :func:`fastvar.load` check the checksum.

        Parameters
        ----------
        path : str, os.PathLike or None
            Write the text there atomically (the path is checked before anything is written, see
            :mod:`fastvar._files`); None: return it.

        Returns
        -------
        str or None
            The JSON text without ``path``; None with it.
        """
        return files.write_json(self, path)

    def to_csv(self, path: "str | os.PathLike") -> None:
        """Write the per-layer columns as CSV (one row per layer), atomically.

        Floats are written exactly ('nan', 'inf' where non-finite), bools as true/false. A
        partial result (:attr:`partial`) has a last column ``partial``, true on every row, so
        that a file of an interrupted run cannot pass for a complete one.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (checked before anything is written).
        """
        files.write_csv(self, path)

    def plot(self, ax=None, **kwargs):
        """q^l and g^l per layer, Monte Carlo ± SE and theory (see :func:`fastvar.plot`).

        Parameters
        ----------
        ax : matplotlib.axes.Axes or None
            Draw into these axes; None makes a figure.
        **kwargs
            Passed to :func:`fastvar.plot`.

        Returns
        -------
        numpy.ndarray of matplotlib.axes.Axes
            One per quantity drawn (see :func:`fastvar.plot`).
        """
        from ..plotting import plot

        return plot(self, ax=ax, **kwargs)

    def plot_histograms(self, of: str = "z", layers: "Sequence[int] | None" = None,
                        axes=None, log: bool = False):
        """Per-layer densities of a quantity with the infinite-width law over them.

        See :func:`fastvar.plotting.histograms`; needs ``simulate(..., histograms=True)``.

        Parameters
        ----------
        of : {"z", "a", "delta"}
            The quantity.
        layers : sequence of int or None
            Layers to draw, 1-based (default: all up to 6, else 6 from first to last).
        axes : sequence of matplotlib.axes.Axes or None
            One axes per layer; None makes a figure.
        log : bool
            Logarithmic density axis (shows the tails).

        Returns
        -------
        numpy.ndarray of matplotlib.axes.Axes
            One per layer.
        """
        from ..plotting import histograms

        return histograms(self, of, layers, axes=axes, log=log)

    def to_pandas(self):
        """The columns as a pandas DataFrame indexed by layer (needs pandas).

        Returns
        -------
        pandas.DataFrame
            One row per layer (index ``layer``, 1..L), one column per Result column.

        Raises
        ------
        ImportError
            pandas is not installed.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install 'fastvar[pandas]'") from None
        return pd.DataFrame({name: self[name] for name in self._columns}).set_index("layer")

    def to_xarray(self):
        """The columns as an xarray Dataset over ``layer``, with the histograms if any.

        Histogram variables, per quantity q in z, a and (with gradients) delta: ``hist_q``
        (layer x bin, int64 counts), ``hist_q_below`` and ``hist_q_above`` (layer),
        ``hist_q_scale`` (layer: the unit of its bins) and ``hist_q_edges`` (layer x edge, value
        units). The coordinates ``bin`` (bin centres) and ``edge`` are in units of each layer's
        scale.

        Returns
        -------
        xarray.Dataset

        Raises
        ------
        ImportError
            xarray is not installed (pip install 'fastvar[xarray]').
        """
        try:
            import xarray  # noqa: F401 (pandas' to_xarray needs it)
        except ImportError:
            raise ImportError("to_xarray() needs xarray: pip install 'fastvar[xarray]'") from None
        data = self.to_pandas().to_xarray()
        if self.histogram_counts is None:
            return data
        layers = range(1, self.network.depth + 1)
        for q, name in enumerate(QUANTITIES[:3 if self.gradients else 2]):
            found = [self.histogram(layer, name) for layer in layers]
            key = f"hist_{name}"
            data[key] = (("layer", "bin"), self.histogram_counts[:, q, 1:-1])
            data[f"{key}_below"] = ("layer", self.histogram_counts[:, q, 0])
            data[f"{key}_above"] = ("layer", self.histogram_counts[:, q, -1])
            data[f"{key}_scale"] = ("layer", np.array([h.scale for h in found]))
            data[f"{key}_edges"] = (("layer", "edge"), np.stack([h.edges for h in found]))
        unit = edges_of(1.0)
        return data.assign_coords(bin=0.5 * (unit[1:] + unit[:-1]), edge=unit)

    def default_columns(self, width: int = render.TABLE_WIDTH) -> list[str]:
        """The columns :meth:`table` shows by default.

        What differs between them (z_var equals q_mean and grad_var g_mean when z has mean 0):
        q and its theory, c and g with theirs when measured, then a_var, dead_frac and z_kurt
        while they fit.

        Parameters
        ----------
        width : int
            Characters the table may take.

        Returns
        -------
        list of str
            Column names, after layer and width.
        """
        return render.default_columns(self, width)

    def table(self, columns: "Sequence[str] | None" = None,
              max_rows: "int | None" = 40) -> str:
        """An aligned per-layer text table with ± standard errors.

        A column with a ``*_se`` partner prints as value±SE; a ``*_theory`` column prints the
        theory and, in brackets, how many SE the measurement lies from it. Layers whose
        statistics are incomplete or overflowed are marked ``*``, layers whose SEs are
        unreliable (heavy tails) ``!``, and explained by warning lines under the table (see
        :attr:`warnings`), followed by a note when q departs from the theory and one on the
        finite-width columns shown. Columns that do not fit 100 characters continue in a block
        below.

        Parameters
        ----------
        columns : sequence of str or None
            Result columns to show after layer and width (default: :meth:`default_columns`).
        max_rows : int or None
            Keep the first and last layers of a deeper network (None: all).

        Returns
        -------
        str
            The table and the lines under it, each at most 100 characters.

        Raises
        ------
        ValueError
            An unknown column (the message lists them), or ``max_rows`` below 2.
        """
        return render.table(self, columns, max_rows)

    @property
    def warnings(self) -> list[str]:
        """Why some statistics are incomplete or overflowed (the layers concerned have
        ``complete`` False and are marked * in :meth:`table`), which SEs are unreliable
        (``q_heavy_tails``, ``g_heavy_tails``, marked !), and, for a Result read with
        ``verify=False`` that failed its checks, why; empty when none."""
        lines = quality_warnings(self._measured, self._counts)
        if self.jacobian_stats is not None:
            lines += jac_columns.warnings(self._measured)
        if self._theory_skipped:
            lines.append(f"the theory step was interrupted: {', '.join(self._theory_skipped)} "
                         "show nan")
        if self.unverified is not None:
            lines.append(f"unverified: this result was read from a file that failed its checks "
                         f"({self.unverified}); its numbers may not be what fastvar computed")
        return lines

    @property
    def verified(self) -> bool:
        """False for a Result read with ``verify=False`` from a file whose checksum or
        metadata did not check out (see :attr:`unverified`); True otherwise."""
        return self.unverified is None

    @property
    def fresh_inputs(self) -> bool:
        """Whether the trials drew fresh N(0, I) inputs (:attr:`normal_inputs`), as the
        finite-width theory assumes it: where a file of an earlier version did not record
        it, True when it has no rows and an input_q0 of 1 (what fresh inputs have; a fixed
        input of mean square exactly 1 would be read as fresh ones, which the table's note
        then says)."""
        if self.normal_inputs is not None:
            return self.normal_inputs
        return self.input_q0_rows is None and self.input_q0 == 1.0

    @property
    def theory_interrupted(self) -> bool:
        """True when a Ctrl-C stopped :meth:`compute_theory`: the theory columns show NaN."""
        return bool(self._theory_skipped)

    @property
    def theory_s(self) -> float:
        """Seconds spent computing the theory columns so far (they are computed on first
        use, apart from the run's ``elapsed_s``)."""
        return self._columns.seconds

    def compute_theory(self) -> None:
        """Compute the theory columns now (else on first use). If Ctrl-C interrupts it, the
        measured columns are kept, the theory columns show NaN and :attr:`warnings` says
        so; the KeyboardInterrupt is raised again."""
        try:
            self._columns.compute_all()
        except KeyboardInterrupt:
            self._theory_skipped = self._columns.abandon(self.network.depth)
            raise

    def describe(self) -> str:
        """The header printed above :meth:`table` by ``repr``.

        Returns
        -------
        str
            Lines of at most 100 characters: the network; the trials, seed, engine and time of
            the run; how to read the table.
        """
        return render.describe(self)

    def __repr__(self) -> str:
        return self.describe() + "\n" + self.table()

    def _repr_html_(self) -> str:
        """The table for notebooks (Jupyter shows it instead of the text)."""
        return render.to_html(self)
