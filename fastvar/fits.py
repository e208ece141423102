"""Depth scales fitted from a run: how fast q^l and c^l approach their fixed points.

:func:`fit_depth_scale` fits xi from ``|x^l - x*| ~ exp(-l / xi)`` on one per-layer
measurement; :func:`measured_depth_scales` fits xi_q and xi_c of a :class:`Result` beside
the mean-field theory's values (:mod:`fastvar.theory`). A :class:`fastvar.Sweep` shows them
per configuration (``Sweep.summary()``).
"""
from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import numpy as np

from . import _text
from .activations import Activation
from .results import Result
from .theory import correlation_fixed_point, depth_from_rate, fixed_point, q_depth_scale


class DepthFit(NamedTuple):
    """A depth scale fitted from ``|x^l - x*| ~ exp(-l / xi)``, with where and how."""

    xi: float  # layers; NaN where the data do not determine it (see note)
    xi_se: float  # standard error of xi, layers
    map_xi: float  # the same fit applied to the mean-field map on the same layers
    first: int  # first and last layer (1-based) of the fit; 0 if none
    last: int
    note: str  # why xi is NaN, or "" when it is a number


def _wls(layers: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, float, float]:
    """Slope of y on layers by weighted least squares: (slope, its SE, chi^2 per dof)."""
    total = w.sum()
    lm, ym = (w * layers).sum() / total, (w * y).sum() / total
    sxx = (w * (layers - lm) ** 2).sum()
    slope = (w * (layers - lm) * (y - ym)).sum() / sxx
    dof = len(layers) - 2
    chi2 = float((w * (y - ym - slope * (layers - lm)) ** 2).sum()) / dof if dof > 0 else 0.0
    # a misfit (the approach not yet exponential) widens the SE rather than hiding in it
    return float(slope), math.sqrt(1.0 / sxx) * math.sqrt(max(1.0, chi2)), chi2


def fit_depth_scale(values: np.ndarray, se: np.ndarray, target: float, *,
                    theory_values: "np.ndarray | None" = None, max_gap: float = 0.1,
                    threshold: float = 3.0, floor: float = 0.0,
                    min_layers: int = 4) -> DepthFit:
    """Fit xi from the approach of a per-layer measurement to its fixed point ``target``.

    The fit is a weighted least-squares line through ``log|x^l - x*|`` over the last run of
    consecutive layers where the gap keeps one sign, lies above ``threshold`` SE plus
    ``floor`` (below, the log is noise or the finite-width shift of the fixed point) and
    below ``max_gap`` (farther out the map is not yet linear and its rate is not the
    asymptotic one); weights (gap/SE)^2 are the inverse variances of the logs. The last
    run, not the first: the approach is exponential only near x*, and a sequence that
    crosses x* on its way (c^0 on the other side of c*) is not yet on it.
    xi = -1/slope with the SE by the delta method, widened by sqrt(chi^2/dof) when the line
    misfits. The layers share networks, so their errors correlate; on repeated seeds the
    spread of xi was at most this SE (tanh, width 500, four sigma_w^2).

    Parameters
    ----------
    values, se : array, shape (L,)
        The measurement at layers 1..L and its standard error, e.g. ``c_mean`` and
        ``c_mean_se`` of a Result.
    target : float
        Its fixed point x*, in the units of ``values``.
    theory_values : array, shape (L,), or None
        The mean-field map's x^l; ``map_xi`` applies the same fit (same layers and weights)
        to it, telling the finite-depth curvature of the map apart from a finite-width
        effect.
    max_gap, threshold, floor : float
        A layer is used where ``threshold * se + floor < |x^l - x*| < max_gap``.
    min_layers : int
        Fewest consecutive layers to fit.

    Returns
    -------
    DepthFit
        xi and its SE in layers, ``map_xi``, the fitted layers (1-based) and a ``note``.
        NaN with a note (never a number that the data do not support) where fewer than
        ``min_layers`` layers qualify or the slope is not below 0 by 2 SE (the approach is
        slower than this depth resolves: at and near the critical line).
    """
    values, se = np.asarray(values, dtype=float), np.asarray(se, dtype=float)
    with np.errstate(invalid="ignore"):
        signed = values - target
        gap = np.abs(signed)
        usable = (np.isfinite(gap) & (se > 0) & (gap > threshold * se + floor)
                  & (gap < max_gap))
    nan = math.nan
    if not (se > 0).any():  # NaN: one network (a single trial) has no spread to measure
        return DepthFit(nan, nan, nan, 0, 0, "no standard errors (they need 2 or more "
                        "networks)")
    if not usable.any():
        return DepthFit(nan, nan, nan, 0, 0, f"no layer has |x - x*| between {threshold:g} SE"
                        f"{f' + {floor:.2g}' if floor else ''} and {max_gap:g}")
    last = int(np.flatnonzero(usable)[-1])
    first = last
    while first > 0 and usable[first - 1] and signed[first - 1] * signed[last] > 0:
        first -= 1
    if last - first + 1 < min_layers:
        run = last - first + 1
        return DepthFit(nan, nan, nan, first + 1, last + 1,
                        f"only {_text.counted(run, 'consecutive layer')} (up to {last + 1}) "
                        f"{'has' if run == 1 else 'have'} |x - x*| between {threshold:g} SE "
                        f"and {max_gap:g}; need {min_layers}")
    window = slice(first, last + 1)
    layers = np.arange(first + 1, last + 2, dtype=float)
    weights = (gap[window] / se[window]) ** 2
    slope, slope_se, chi2 = _wls(layers, np.log(gap[window]), weights)
    map_xi = nan
    if theory_values is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            theory_gap = np.log(np.abs(np.asarray(theory_values, dtype=float)[window] - target))
        if np.isfinite(theory_gap).all():
            map_slope = _wls(layers, theory_gap, weights)[0]
            map_xi = -1.0 / map_slope if map_slope < 0 else math.inf
    if not slope + 2.0 * slope_se < 0.0:
        return DepthFit(nan, nan, map_xi, first + 1, last + 1,
                        f"no significant decay over layers {first + 1}-{last + 1} (slope "
                        f"{slope:.3g} ± {slope_se:.2g} per layer): xi is longer than this "
                        "depth resolves")
    return DepthFit(-1.0 / slope, slope_se / slope ** 2, map_xi, first + 1, last + 1, "")


@functools.lru_cache(maxsize=4096)
def _theory_point(activation: str, sw2: float, sb2: float, q0: float,
                  pairs: bool) -> tuple[float, float, float, float]:
    """(q*, c*, xi_q, xi_c) of the theory; c* (NaN without pairs) costs most: about 0.3 s
    of quadratures, and a sweep asks for each point again (tables, plots)."""
    act = Activation.parse(activation)
    q_star = fixed_point(act, sw2, sb2, q0)[0]
    c_star, chi_c = correlation_fixed_point(act, sw2, sb2)  # once: the costly part
    return (q_star, c_star if pairs else math.nan, q_depth_scale(act, sw2, sb2),
            depth_from_rate(chi_c))


def measured_depth_scales(res: Result) -> dict[str, Any]:
    """xi_q and xi_c of one Result, fitted (:func:`fit_depth_scale`) beside the theory.

    The fixed points x* are the theory's q* and c* (:func:`fastvar.theory.fixed_point`,
    :func:`fastvar.theory.correlation_fixed_point`), which needs one sigma_w^2 for all
    layers and no residual stream or norm; otherwise every value is NaN and the notes say why.

    Parameters
    ----------
    res : Result
        A run; xi_c needs input pairs (``simulate(..., correlation=c0)``).

    Returns
    -------
    dict
        ``xi_q``, ``xi_q_se``, ``xi_q_map``, ``xi_q_theory`` (:func:`fastvar.theory.
        depth_scales`), ``xi_q_layers`` ("first-last" fitted layers, "" if none),
        ``xi_q_note`` (why xi_q is NaN, else ""), and the same for ``xi_c`` (NaN without
        input pairs). All in layers.
    """
    out: dict[str, Any] = {}

    def put(kind: str, fit: "DepthFit | None", asymptotic: float, note: str = "") -> None:
        if fit is None:
            fit = DepthFit(math.nan, math.nan, math.nan, 0, 0, note)
        out.update({f"xi_{kind}": fit.xi, f"xi_{kind}_se": fit.xi_se,
                    f"xi_{kind}_map": fit.map_xi, f"xi_{kind}_theory": asymptotic,
                    f"xi_{kind}_layers": f"{fit.first}-{fit.last}" if fit.first else "",
                    f"xi_{kind}_note": fit.note})

    net = res.network
    sw2 = net.sigma_w2
    pairs = res.input_correlation is not None
    try:
        if not np.allclose(sw2, sw2[0], rtol=1e-12):
            raise ValueError("the layers have different sigma_w^2: no single fixed point")
        if net.residual is not None or net.norm is not None:
            raise ValueError("residual streams and norms have no fixed point of the plain "
                             "maps: no depth scale is fitted")
        q_star, c_star, xi_q_theory, xi_c_theory = _theory_point(
            net.activation, float(sw2[0]), net.bias_std ** 2, res.input_q0, pairs)
    except ValueError as err:
        put("q", None, math.nan, str(err))
        put("c", None, math.nan, str(err))
        return out
    # tanh-like maps bend on the scale 1 of the activation; for large q* on q*'s own scale
    put("q", fit_depth_scale(res.q_mean, res.q_mean_se, q_star, theory_values=res.q_theory,
                             max_gap=0.1 * max(q_star, 1.0)), xi_q_theory)
    if not pairs:
        put("c", None, xi_c_theory, "no input pairs (simulate with correlation=c0)")
    else:
        # the per-network cosine is biased by about -c(1 - c^2)/(2n) per layer, which
        # shifts the measured fixed point by that over (1 - chi_c): 3x that is noise too
        chi_c = math.exp(-1.0 / xi_c_theory) if xi_c_theory > 0 else 0.0
        width = min(net.widths[1:])
        shift = abs(c_star) * (1.0 - c_star ** 2) / (2.0 * width * max(1.0 - chi_c, 0.05))
        put("c", fit_depth_scale(res.c_mean, res.c_mean_se, c_star, theory_values=res.c_theory,
                                 floor=3.0 * shift), xi_c_theory)
    return out


__all__ = ["DepthFit", "fit_depth_scale", "measured_depth_scales"]
