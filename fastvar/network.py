"""The description of a random fully connected network.

z^l = W^l a^{l-1} + b^l and a^l = phi(z^l) for l = 1..L, a^0 = x; W^l has iid entries of
variance set by the init scheme (or is a scaled Haar-orthogonal matrix), b^l iid N(0,
bias_std^2).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field, fields
from typing import Sequence

import numpy as np

from ._checks import check_int, check_real, shown
from .activations import Activation
from .kernels.codes import NORM_CODES
from .options import Option, declare, name, number_or_name, options_of, real, widths_value

INIT_SCHEMES = ("lecun", "xavier", "he", "orthogonal")
_INIT_ALIASES = {"glorot": "xavier", "kaiming": "he"}
DISTRIBUTIONS = ("normal", "uniform", "truncated_normal")
MAX_WIDTH = 1 << 24
# Valid ranges of the scale parameters. Within them every derived quantity (gain^2,
# bias_std^2, Var(W) down to gain^2/MAX_WIDTH, n Var(W), the std sqrt(Var W)/0.88 and the
# bound sqrt(3 Var W) the engines draw with) is a finite, normal float64 for any widths;
# beyond them Var(W) overflows to inf (an OverflowError in gain**2) or underflows to 0 or to
# a subnormal, and the run would report zeros or NaN instead of failing.
GAIN_RANGE: tuple[float, float] = (1e-100, 1e100)
SIGMA_W2_RANGE: tuple[float, float] = (1e-200, 1e200)
BIAS_STD_RANGE: tuple[float, float] = (1e-100, 1e100)  # or exactly 0: no biases


def _check_width(name: str, value) -> int:
    return check_int(name, value, 1, MAX_WIDTH)


def _check_widths(widths) -> tuple[tuple[int, ...], np.ndarray]:
    """The widths as a tuple of ints in 1..MAX_WIDTH, and as a float64 array; vectorized, as
    a network may have millions of layers (a loop would take seconds before the run could be
    refused)."""
    plain = isinstance(widths, np.ndarray) or bool not in set(map(type, widths))
    arr = np.asarray(widths) if plain else np.empty(0, dtype=object)  # True is no width
    if arr.ndim == 1 and arr.dtype.kind in "iu":
        bad = np.flatnonzero((arr < 1) | (arr > MAX_WIDTH))
        if bad.size:
            _check_width(f"widths[{bad[0]}]", int(arr[bad[0]]))
        return tuple(arr.tolist()), arr.astype(np.float64)
    checked = tuple(_check_width(f"widths[{i}]", w) for i, w in enumerate(widths))
    return checked, np.array(checked, dtype=np.float64)


NORMS = ("layer", "rms")
# depth scalings of the residual branch, by name: alpha as a function of the depth L
RESIDUAL_SCALINGS = {"1/sqrt(L)": lambda depth: 1.0 / math.sqrt(depth),
                     "1/L": lambda depth: 1.0 / depth}


def _check_residual(residual, widths: tuple[int, ...]) -> "float | str | None":
    """The residual branch scale: None, a float alpha in (0, 1e100], or a named scaling."""
    if residual is None:
        return None
    if isinstance(residual, str):
        key = residual.replace(" ", "")
        if key not in RESIDUAL_SCALINGS:
            raise ValueError(f"unknown residual scaling {residual!r}; give a number alpha > 0 "
                             f"or one of {', '.join(RESIDUAL_SCALINGS)}")
        residual = key
    else:
        residual = _check_scale("residual (alpha)", residual, (1e-100, 1e100))
    if len(set(widths[1:])) != 1:
        raise ValueError(f"a residual stream needs equal hidden widths, got {list(widths[1:])}; "
                         "use mlp(width, depth, input_width=...)")
    return residual


def _check_scale(name: str, value, valid: tuple[float, float], zero_ok: bool = False) -> float:
    """``value`` as a float in ``valid`` (or 0 if ``zero_ok``), else TypeError/ValueError."""
    value = check_real(name, value, 0.0, strict=not zero_ok)
    low, high = valid
    if low <= value <= high or (zero_ok and value == 0.0):
        return value
    none = " (or 0 for none)" if zero_ok else ""
    raise ValueError(f"{name} must be between {low:g} and {high:g}{none}, got {shown(value)}: "
                     "beyond "
                     "that the weight or bias variance overflows or underflows float64")


@dataclass(frozen=True)
class Network:
    """A fully connected network with random weights, as a validated, frozen description.

    Parameters
    ----------
    widths : sequence of int
        ``[n_0, n_1, ..., n_L]``: the input width followed by the width of each layer.
    activation : str
        ``"linear"``, ``"relu"``, ``"leaky_relu"`` (``"leaky_relu(0.2)"`` sets the slope),
        ``"tanh"``, ``"sigmoid"``, ``"gelu"``, ``"silu"``, ``"elu"`` (``"elu(0.5)"``),
        ``"selu"``, ``"softplus"`` or ``"erf"``. The slope and the alpha lie in -1000..1000.
    init : str or float
        ``"lecun"`` (Var W = gain^2/n_in), ``"xavier"``/``"glorot"`` (gain^2 * 2/(n_in+n_out)),
        ``"he"``/``"kaiming"`` (gain^2 * 2/n_in), ``"orthogonal"`` (gain * Haar-orthogonal),
        or a number s = sigma_w^2 (Var W = s/n_in) between 1e-200 and 1e200.
    distribution : str
        Law of the weight entries: ``"normal"``, ``"uniform"`` or ``"truncated_normal"``
        (cut at +-2 std and rescaled to the exact variance). Not used by ``"orthogonal"``.
    gain : float
        Multiplies the standard deviation of the named schemes (not a numeric init);
        between 1e-100 and 1e100.
    bias_std : float
        Standard deviation of the iid normal biases: 0 for none, else 1e-100 to 1e100.
    residual : float, str or None
        None: a plain network, z^l = W^l a^{l-1} + b^l. A branch scale alpha > 0 (a float,
        or ``"1/sqrt(L)"`` or ``"1/L"`` with L the number of layers): a pre-norm residual
        stream, h^1 = W^1 x + b^1 and h^l = h^{l-1} + alpha (W^l phi(N(h^{l-1})) + b^l) for
        l >= 2; all hidden widths must be equal. The statistics of z, q and delta are then
        those of the stream h^l and of dL/dh^l.
    norm : str or None
        Normalization N before each layer l >= 2 (never on the input): None, ``"layer"``
        (subtract the mean over units, divide by the root mean square) or ``"rms"`` (divide
        by the root mean square); no learnable parameters, as at initialization. Without
        ``residual``, z^l = W^l phi(N(z^{l-1})) + b^l.
    norm_eps : float
        Added to the mean square inside the root of N (0 to 1e100; default 0).

    The ranges (``GAIN_RANGE``, ``SIGMA_W2_RANGE``, ``BIAS_STD_RANGE``) keep Var(W) and the
    bias variance finite and nonzero; anything outside raises ValueError naming the range.
    """

    widths: tuple[int, ...] = declare(None, """
        sequence of int
            All widths, input first, e.g. ``[784, 256, 256, 10]``.""",
        "all widths, e.g. 784,256,256,10", parse=widths_value, sweep="fixed", required=True)
    activation: str = declare("relu", """
        str
            The activation phi (see above).""",
        "linear, relu, leaky_relu, tanh, sigmoid, gelu, silu, elu, selu, softplus or erf; "
        "slope or alpha (-1000..1000) in brackets: leaky_relu(0.2), elu(0.5) (default relu)",
        parse=name)
    init: "str | float" = declare("he", """
        str or float
            The init scheme or sigma_w^2 (see above).""",
        "lecun, xavier, he, orthogonal, or sigma_w^2 as a number, 1e-200..1e200 (default he)",
        parse=number_or_name, ranges=True)
    distribution: str = declare("normal", """
        str
            Law of the weight entries (see above).""",
        "normal, uniform, truncated_normal", parse=name)
    gain: float = declare(1.0, """
        float
            Gain of the init scheme (see above).""",
        "gain of the init scheme, 1e-100..1e100 (default 1)", parse=real, ranges=True)
    bias_std: float = declare(0.0, """
        float
            Standard deviation of the biases (see above).""",
        "std of the biases, 0 or 1e-100..1e100 (default 0)", parse=real, ranges=True)
    residual: "float | str | None" = declare(None, """
        float, str or None
            The residual branch scale alpha (see above).""",
        "a pre-norm residual stream h^l = h^{l-1} + ALPHA (W phi(N(h)) + b): a number > 0, "
        "1/sqrt(L) or 1/L (default: none, a plain network)", parse=number_or_name,
        metavar="ALPHA", ranges=True)
    norm: "str | None" = declare(None, """
        str or None
            The normalization (see above).""",
        "layer or rms: LayerNorm or RMSNorm before each layer after the first (default none)",
        parse=name)
    norm_eps: float = declare(0.0, """
        float
            Added inside the norm's root (see above).""",
        "added to the mean square inside the norm's root (default 0)", parse=real,
        ranges=True)
    _act: Activation = field(init=False, repr=False, compare=False)
    # derived once: a small call reads them a dozen times (cost model, kernel arguments)
    _weight_var: np.ndarray = field(init=False, repr=False, compare=False)
    _n_weights: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        widths = self.widths
        if isinstance(widths, (str, bytes)) or not isinstance(widths, (Sequence, np.ndarray)):
            raise TypeError("widths must be a sequence of integers like [784, 256, 10], "
                            f"got {widths!r}")
        if len(widths) < 2:
            raise ValueError("widths needs an input width and at least one layer, "
                             f"got {list(widths)}")
        widths, widths_array = _check_widths(widths)
        act = Activation.parse(self.activation)
        init = self.init
        if isinstance(init, str):
            key = _INIT_ALIASES.get(init.lower(), init.lower())
            if key not in INIT_SCHEMES:
                raise ValueError(
                    f"unknown init {init!r}; choose lecun, xavier (glorot), he (kaiming), "
                    "orthogonal, or a number sigma_w^2 > 0"
                )
            init = key
        else:
            init = _check_scale("init (sigma_w^2)", init, SIGMA_W2_RANGE)
        if not isinstance(self.distribution, str) or self.distribution.lower() not in DISTRIBUTIONS:
            raise ValueError(
                f"unknown distribution {self.distribution!r}; choose one of "
                f"{', '.join(DISTRIBUTIONS)}"
            )
        distribution = self.distribution.lower()
        if init == "orthogonal" and distribution != "normal":
            raise ValueError("distribution does not apply to init='orthogonal'; leave it at "
                             "'normal'")
        gain = _check_scale("gain", self.gain, GAIN_RANGE)
        if not isinstance(init, str) and gain != 1.0:
            raise ValueError("gain applies to named init schemes; fold it into the numeric init "
                             "instead")
        bias_std = _check_scale("bias_std", self.bias_std, BIAS_STD_RANGE, zero_ok=True)
        residual = _check_residual(self.residual, widths)
        norm = self.norm
        if isinstance(norm, str) and norm.lower() == "none":  # as the command line writes it
            norm = None
        if norm is not None and (not isinstance(norm, str) or norm.lower() not in NORMS):
            raise ValueError(f"unknown norm {norm!r}; choose None ('none'), 'layer' or 'rms'")
        norm = None if norm is None else norm.lower()
        if norm == "layer" and 1 in widths[1:]:
            raise ValueError(f"norm='layer' over a layer of width 1 (layer "
                             f"{widths.index(1, 1)}) is always 0: h - mean(h) = 0 there, and "
                             "every later layer is constant; use widths >= 2, or norm='rms'")
        norm_eps = _check_scale("norm_eps", self.norm_eps, (1e-300, 1e100), zero_ok=True)
        if norm_eps and norm is None:
            raise ValueError("norm_eps applies to a norm; give norm='layer' or 'rms' too")
        for key, value in (("widths", widths), ("activation", act.label), ("init", init),
                            ("distribution", distribution), ("gain", gain), ("bias_std", bias_std),
                            ("residual", residual), ("norm", norm), ("norm_eps", norm_eps),
                            ("_act", act)):
            object.__setattr__(self, key, value)
        weight_var = _weight_var(widths_array, init, gain)
        weight_var.flags.writeable = False
        # handed out as a view of the read-only array: numpy refuses to make it writable
        object.__setattr__(self, "_weight_var", weight_var.view())
        object.__setattr__(self, "_n_weights", sum(map(operator.mul, widths[:-1], widths[1:])))

    def __reduce__(self):
        # rebuilt from the fields on unpickling (and copying), so the derived values are
        # computed again and weight_var stays read-only (a pickled array comes back writable)
        return type(self), tuple(getattr(self, f.name) for f in fields(self) if f.init)

    @property
    def depth(self) -> int:
        """Number of layers L."""
        return len(self.widths) - 1

    @property
    def activation_fn(self) -> Activation:
        """The parsed activation (callable on arrays, with ``.derivative``)."""
        return self._act

    @property
    def weight_var(self) -> np.ndarray:
        """Var(W^l_ij) for l = 1..L, shape (L,), read-only."""
        return self._weight_var

    @property
    def sigma_w2(self) -> np.ndarray:
        """sigma_w^2 = n_{l-1} Var(W^l_ij) for l = 1..L, shape (L,) (the mean-field gain)."""
        return np.asarray(self.widths[:-1], dtype=np.float64) * self.weight_var

    @property
    def n_weights(self) -> int:
        """Number of weight entries sum_l n_l n_{l-1}."""
        return self._n_weights

    @property
    def alpha(self) -> float:
        """The residual branch scale alpha (0.0 for a plain network)."""
        if self.residual is None:
            return 0.0
        if isinstance(self.residual, str):
            return RESIDUAL_SCALINGS[self.residual](self.depth)
        return float(self.residual)

    @property
    def norm_code(self) -> int:
        """The norm as the kernels' code (:data:`fastvar.kernels.codes.NORM_CODES`)."""
        return NORM_CODES[self.norm]

    def to_dict(self) -> dict:
        """The network as a JSON-safe dict.

        Returns
        -------
        dict
            ``widths``, ``activation``, ``init``, ``distribution``, ``gain``, ``bias_std``
            (and ``residual``, ``norm``, ``norm_eps`` where set); ``Network(**d)`` rebuilds
            the network.
        """
        out = {"widths": list(self.widths), "activation": self.activation, "init": self.init,
               "distribution": self.distribution, "gain": self.gain, "bias_std": self.bias_std}
        if self.residual is not None or self.norm is not None:
            out.update(residual=self.residual, norm=self.norm, norm_eps=self.norm_eps)
        return out

    def describe(self) -> str:
        """The network in one line of text.

        Returns
        -------
        str
            Widths, activation, init, distribution, and gain, bias, residual scale and norm
            where set, e.g. ``"widths 256->256x20 (20 layers), relu, he normal weights"``.
        """
        w = self.widths
        shape = f"{w[0]}->{w[1]}x{self.depth}" if len(set(w[1:])) == 1 else ",".join(map(str, w))
        init = self.init if isinstance(self.init, str) else f"sigma_w^2={self.init:g}"
        extra = f", gain {self.gain:g}" if self.gain != 1.0 else ""
        extra += f", bias_std {self.bias_std:g}" if self.bias_std else ""
        dist = "" if self.init == "orthogonal" else f" {self.distribution}"
        if self.residual is not None:
            scale = self.residual if isinstance(self.residual, str) else f"{self.residual:g}"
            extra += f", residual alpha {scale}"
        if self.norm is not None:
            extra += f", {self.norm} norm" + (f" (eps {self.norm_eps:g})" if self.norm_eps else "")
        layers = f"{self.depth} layer{'s' if self.depth > 1 else ''}"
        return (f"widths {shape} ({layers}), {self.activation}, {init}{dist} "
                f"weights{extra}")


#: the options a Network declares (its fields): the command line's network options and the
#: keys a sweep may vary come from these
NETWORK_OPTIONS: tuple[Option, ...] = options_of(Network)


def _weight_var(widths: np.ndarray, init: "str | float", gain: float) -> np.ndarray:
    fan_in, fan_out = widths[:-1], widths[1:]
    g2 = gain ** 2
    if init == "lecun":
        return g2 / fan_in
    if init == "xavier":
        return g2 * 2.0 / (fan_in + fan_out)
    if init == "he":
        return g2 * 2.0 / fan_in
    if init == "orthogonal":
        return g2 / np.maximum(fan_in, fan_out)
    return init / fan_in


def mlp(width: int, depth: int, input_width: "int | None" = None, **kwargs) -> Network:
    """A Network of ``depth`` layers of equal width.

    Parameters
    ----------
    width : int
        Units per layer, 1 to ``fastvar.network.MAX_WIDTH``.
    depth : int
        Number of layers L.
    input_width : int, optional
        Input units n_0 (default: ``width``).
    **kwargs
        The other fields of :class:`Network` (``activation``, ``init``, ``distribution``,
        ``gain``, ``bias_std``, ``residual``, ``norm``, ``norm_eps``).

    Returns
    -------
    Network
        Widths ``[input_width] + [width] * depth``.

    Raises
    ------
    TypeError, ValueError
        If a width or a field is not valid, naming it.
    """
    width = _check_width("width", width)
    depth = _check_width("depth", depth)
    input_width = width if input_width is None else _check_width("input_width", input_width)
    return Network([input_width] + [width] * depth, **kwargs)
