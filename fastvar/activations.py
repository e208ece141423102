"""Activation names, their parameters, and NumPy-array access to phi and phi'.

The mathematics lives once, in :mod:`fastvar.kernels.activations`; this module parses
names such as ``"leaky_relu(0.2)"`` and evaluates the same code on NumPy arrays.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ._checks import check_real
from .kernels import activations as _k

# name -> (kernel code, default parameter or None when the activation takes none)
_TABLE: dict[str, tuple[int, float | None]] = {
    "linear": (_k.LINEAR, None),
    "relu": (_k.RELU, None),
    "leaky_relu": (_k.LEAKY_RELU, 0.01),
    "tanh": (_k.TANH, None),
    "sigmoid": (_k.SIGMOID, None),
    "gelu": (_k.GELU, None),
    "silu": (_k.SILU, None),
    "elu": (_k.ELU, 1.0),
    "selu": (_k.SELU, None),
    "softplus": (_k.SOFTPLUS, None),
    "erf": (_k.ERF, None),
}
_ALIASES = {"identity": "linear", "swish": "silu"}
#: The names of the built-in activations ("leaky_relu", "elu" take a parameter in the name:
#: "leaky_relu(0.2)").
ACTIVATION_NAMES: tuple[str, ...] = tuple(_TABLE)
# Valid range of the parameter (slope of leaky_relu, alpha of elu). phi grows like param * |z|
# on the negative side, so its 4th moment (kurtosis) and the theory's E[phi(z)^2] scale like
# param^4 and param^2: a bound of 1e3 keeps both far from overflow at any sensible q, where
# leaky_relu(1e308) squares to inf and the theory's q turns into NaN.
PARAM_RANGE: tuple[float, float] = (-1e3, 1e3)
_SYNTAX = re.compile(r"^\s*([a-z_]+)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")


@dataclass(frozen=True)
class Activation:
    """A parsed activation: ``name``, kernel ``code`` and its ``param`` (0.0 if none).

    ``param`` is the slope of ``leaky_relu`` (default 0.01) or the alpha of ``elu``
    (default 1); either must lie in ``PARAM_RANGE``, -1000 to 1000. Build one with
    :meth:`parse`; direct construction is checked the same way.

    Parameters
    ----------
    name : str
        One of :data:`ACTIVATION_NAMES`.
    code : int
        Its kernel code (:mod:`fastvar.kernels.codes`); must match ``name``.
    param : float
        The parameter of ``leaky_relu`` or ``elu``; 0.0 for the others.

    Raises
    ------
    ValueError
        An unknown name or code, or a parameter out of range (or given to an activation that
        takes none).
    """

    name: str
    code: int
    param: float = 0.0

    def __post_init__(self) -> None:
        if self.name not in _TABLE or self.code != _TABLE[self.name][0]:
            raise ValueError(f"unknown activation {self.name!r} with code {self.code!r}; "
                             "build one with Activation.parse('relu'), 'leaky_relu(0.2)', ...")
        label = f"parameter of {self.name!r}"
        if _TABLE[self.name][1] is None:
            if self.param != 0.0:
                raise ValueError(f"activation {self.name!r} takes no parameter, got {self.param!r}")
            return
        param = check_real(label, self.param, -math.inf, strict=False)
        low, high = PARAM_RANGE
        if not low <= param <= high:
            raise ValueError(f"{label} must be between {low:g} and {high:g}, got {param:g}")
        object.__setattr__(self, "param", param)

    @classmethod
    def parse(cls, spec: "str | Activation") -> "Activation":
        """Parse an activation's name, with its parameter if it takes one.

        Parameters
        ----------
        spec : str or Activation
            ``"tanh"``, ``"leaky_relu(0.2)"``, ``"elu(0.5)"``, ... (case-insensitive; see
            ``ACTIVATION_NAMES``); an Activation is returned as it is.

        Returns
        -------
        Activation
            The parsed activation; a parameter left out takes its default.

        Raises
        ------
        TypeError
            If ``spec`` is neither a str nor an Activation.
        ValueError
            For an unknown name or a parameter that is not a number in ``PARAM_RANGE``.
        """
        if isinstance(spec, Activation):
            return spec
        if not isinstance(spec, str):
            raise TypeError(f"activation must be a name such as 'relu', got {type(spec).__name__}")
        match = _SYNTAX.match(spec.lower())
        name = _ALIASES.get(match.group(1), match.group(1)) if match else None
        if name not in _TABLE:
            raise ValueError(
                f"unknown activation {spec!r}; choose one of {', '.join(ACTIVATION_NAMES)} "
                "(a parameter goes in the name, e.g. 'leaky_relu(0.2)', 'elu(0.5)')"
            )
        code, default = _TABLE[name]
        text = match.group(2)
        if text is None:
            return cls(name, code, 0.0 if default is None else default)
        if default is None:
            raise ValueError(f"activation {name!r} takes no parameter, got {spec!r}")
        try:
            param = float(text)
        except ValueError:
            raise ValueError(f"parameter of {name!r} must be a number, got {text!r}") from None
        return cls(name, code, param)

    @property
    def label(self) -> str:
        """The name as written back, with its parameter when it takes one."""
        return self.name if _TABLE[self.name][1] is None else f"{self.name}({self.param:g})"

    def __call__(self, x) -> np.ndarray:
        """The activation phi, elementwise.

        Parameters
        ----------
        x : array_like, any shape
            Pre-activations.

        Returns
        -------
        float64 array, the shape of ``x``
            phi(x); NaN where x is NaN or infinite.
        """
        return _k.phi_ufunc(self.code, self.param, np.asarray(x, dtype=np.float64))

    def derivative(self, x) -> np.ndarray:
        """The derivative phi' at ``x``, elementwise.

        Parameters
        ----------
        x : float or array_like
            Pre-activations, as for calling the activation.

        Returns
        -------
        float64 array, the shape of ``x``
            The slope phi'(x) at each pre-activation; NaN where x is NaN or infinite.
        """
        return _k.dphi_ufunc(self.code, self.param, np.asarray(x, dtype=np.float64))
