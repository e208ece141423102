"""Finite-width theory: the kurtosis of one unit and the spread of q and g over networks.

At infinite width z^l is Gaussian and q^l = ||z^l||^2 / n_l is the same in every network
(:mod:`fastvar.theory`). At width n both fluctuate by O(1/n). Given the layer below, the
pre-activations z_i^l = sum_j W_ij a_j + b_i are iid over i with variance

    Khat^l = C_b + C_W ||phi(z^{l-1})||^2 / n_{l-1}      (||x||^2 / n_0 at l = 1),

C_W = n_{l-1} Var(W^l_ij) (``Network.sigma_w2``), C_b = bias_std^2. For normal weights they
are N(0, Khat^l) given the layer below, so exactly

    E z^4 / (E z^2)^2 - 3 = 3 Var(Khat) / (E Khat)^2,
    Var q = Var(Khat) + (2 / n_l) E[Khat^2].

Uniform and truncated-normal weights (kappa_w = E w^4 / (E w^2)^2: 9/5 and 2.366) add a
fourth cumulant (kappa_w - 3) C_W^2 E[mean_j a_j^4] / n_{l-1} to z given the layer below.

Which form applies where:

* **exact** (linear, ReLU, leaky ReLU; any bias; normal, uniform or truncated-normal
  weights): E[phi(z)^2] = c2 E z^2 and E[phi(z)^4] = c4 E z^4 for z symmetric given the
  layer below, so (E Khat, E Khat^2, E mean a^4) follow an exact linear recursion. Without
  bias and with normal weights it is the product
  E Khat^2 / (E Khat)^2 = (1 + 2/n_0) prod_{k<l} (1 + nu/n_k), nu = 5 (ReLU), 2 (linear),
  (5 + 5a^4 - 2a^2) / (1 + a^2)^2 (leaky ReLU of slope a); drop (1 + 2/n_0) for a fixed
  input.
* **1/n** (every other activation): the vertex recursion of Roberts, Yaida and Hanin
  (*The Principles of Deep Learning Theory*, ch. 4-5), with V^l = n_{l-1} Var(Khat^l):
  V^{l+1} = C_W^2 (<phi^4>_K - <phi^2>_K^2) + (n_l / n_{l-1}) (C_W d<phi^2>_K/dK)^2 V^l,
  V^1 = 2 C_W^2 q0^2 for fresh N(0, I) inputs, 0 for a fixed input; K^l the mean-field
  q^l. Its error is O(1/n^2). Non-normal weights add
  (kappa_w - 3) C_W^2 <phi^4>_{K^{l-1}} / (n_{l-1} (K^l)^2) to the kurtosis (their effect
  on V is O(1/n^2)); at layer 1 that needs the input's mean x^4, known only for fresh
  N(0, I) inputs (3 q0^2), so a fixed input or rows leave it NaN there.
* **the mean** (``q_mean_theory``): E q^l = K^l exactly for linear, ReLU and leaky ReLU
  (E phi(z)^2 = c2 E z^2); otherwise K^l plus its 1/n shift from the curvature of
  <phi^2>_K (:func:`vertex_moments`).
* **gradients**, g^l = ||delta^l||^2 / n_l with a fresh N(0, I) cotangent at the output:
  exact for normal weights with linear (any bias; the backward pass does not see the
  forward one) or ReLU / leaky ReLU without bias (each phi'(z_j)^2 is 1 or a^2 with
  probability 1/2, independently of the rest):
  E[(g^l)^2] / E[g^l]^2 = (1 + 2/n_L) prod_{k=l}^{L-1} (1 + nu/n_k), except that for
  ReLU a dead layer (all its units negative, probability 2^-n) zeroes every gradient below
  the output: :func:`gradient_moments`.

What is measured: ``z_kurt`` pools every unit of every trial, so its theory is the excess
kurtosis of the marginal law of one unit in one trial; ``q_var`` and ``g_var`` are the
variances over all trials of the per-trial q and g. With ``inputs_per_network`` k > 1 the
trials of a network are correlated, but each one's marginal law is that of a single trial,
which these columns describe (the sample variance over correlated trials is still
consistent: its bias is -(k - 1) Cov / (trials - 1)). For a data set, a trial draws a row at
random: the law is the mixture over rows, whose moments are the row averages of the
moments (E z^2, E z^4, E q, E q^2), not the average of the kurtoses (averaged as
:func:`fastvar.theory.row_average` averages the mean-field maps). Residual streams, norms
and orthogonal weights have no theory here: NaN, with the reason from :func:`forms`.
"""
from __future__ import annotations

import functools
import math

import numpy as np

from .network import Network
from .theory import kernel_moments, row_average

__all__ = ["COLUMNS", "weight_kurtosis", "exact_moments", "vertex_moments",
           "gradient_moments", "forms", "finite_width_columns", "note"]

COLUMNS = ("q_mean_theory", "z_kurt_theory", "q_var_theory", "g_var_theory")
HOMOGENEOUS = ("linear", "relu", "leaky_relu")
_TRUNCATION = 2.0  # truncated normal weights: N(0, 1) cut at +-2 standard deviations


def weight_kurtosis(distribution: str) -> float:
    """The kurtosis kappa_w = E w^4 / (E w^2)^2 of a weight law.

    3 (normal), 9/5 (uniform), 2.366 (normal truncated at +-2 std; the rescaling to the
    scheme's variance does not change it).

    Parameters
    ----------
    distribution : {"normal", "uniform", "truncated_normal"}
        The weight law.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        An unknown distribution.
    """
    if distribution == "normal":
        return 3.0
    if distribution == "uniform":
        return 9.0 / 5.0
    if distribution != "truncated_normal":
        raise ValueError(f"unknown weight distribution {distribution!r}")
    a = _TRUNCATION
    mass = math.erf(a / math.sqrt(2.0))
    tail = 2.0 * a * math.exp(-0.5 * a * a) / math.sqrt(2.0 * math.pi)  # 2 a phi(a)
    second = mass - tail
    fourth = 3.0 * mass - tail * (a * a + 3.0)
    return fourth * mass / (second * second)


def _homogeneous_constants(net: Network) -> tuple[float, float]:
    """(c2, c4) with E phi(z)^2 = c2 E z^2 and E phi(z)^4 = c4 E z^4 for symmetric z; the
    same pair holds for phi'(z)^2 and phi'(z)^4 (phi'^2 is 1 or a^2 on each side)."""
    act = net.activation_fn
    slope = {"linear": 1.0, "relu": 0.0}.get(act.name, act.param)
    return 0.5 * (1.0 + slope ** 2), 0.5 * (1.0 + slope ** 4)


def _nu(net: Network) -> float:
    """nu of the products: 3 c4 / c2^2 - 1 (5 for ReLU, 2 for linear)."""
    c2, c4 = _homogeneous_constants(net)
    return 3.0 * c4 / (c2 * c2) - 1.0


def exact_moments(net: Network, q0, q0_square, x4) -> tuple[np.ndarray, np.ndarray,
                                                              np.ndarray]:
    """Exact (E z^2, E Khat^2, E z^4) of each layer for linear, ReLU and leaky ReLU.

    Parameters
    ----------
    net : Network
        Plain (no residual, no norm), non-orthogonal, activation linear / relu / leaky_relu.
    q0, q0_square, x4 : array_like, shape (m,)
        Per input law (a row of a data set, or the law of fresh inputs): E[||x||^2 / n_0],
        E[(||x||^2 / n_0)^2] and E[mean_j x_j^4] (only used for non-normal weights; NaN
        there makes the result NaN).

    Returns
    -------
    (second, khat_square, fourth) : arrays of shape (L, m)
        E z_i^2 = E Khat, E Khat^2 and E z_i^4 of one unit of layer l (rows l = 1..L).
    """
    c2, c4 = _homogeneous_constants(net)
    excess = weight_kurtosis(net.distribution) - 3.0
    cb, cw, widths = net.bias_std ** 2, net.sigma_w2, net.widths
    q0, q0_square, x4 = (np.asarray(v, dtype=np.float64) for v in (q0, q0_square, x4))
    out = np.empty((3, net.depth, q0.size))
    # E mean_j a_j^2, E (mean_j a_j^2)^2 and E mean_j a_j^4 of the layer below (at l = 1 the
    # input: a = x)
    mean_a2, mean_a2_square, mean_a4 = q0, q0_square, x4
    for l in range(net.depth):
        fan = widths[l]
        k1 = cb + cw[l] * mean_a2
        k2 = cb * cb + 2.0 * cb * cw[l] * mean_a2 + cw[l] ** 2 * mean_a2_square
        # the fourth cumulant of z given the layer below: 0 for normal weights (and then
        # not NaN whatever x4 is)
        fourth = 3.0 * k2 + (excess * cw[l] ** 2 / fan * mean_a4 if excess else 0.0)
        out[:, l] = k1, k2, fourth
        n = widths[l + 1]
        # a_i = phi(z_i): iid over i given the layer below, E a^2 = c2 Khat, E a^4 = c4 E z^4
        mean_a2 = c2 * k1
        mean_a4 = c4 * fourth
        mean_a2_square = mean_a4 / n + (1.0 - 1.0 / n) * c2 * c2 * k2
    return out[0], out[1], out[2]


def vertex_moments(net: Network, q0, normal_inputs: bool) -> dict[str, np.ndarray]:
    """The 1/n vertex recursion for any activation (normal weights; see the module text).

    Parameters
    ----------
    net : Network
        A plain network (no residual, no norm).
    q0 : array_like, shape (m,)
        The input length ||x||^2 / n_0 of each input law (1 for fresh N(0, I) inputs).
    normal_inputs : bool
        Fresh N(0, I) inputs (V^1 = 2 C_W^2 q0^2) or fixed ones (V^1 = 0).

    Returns
    -------
    dict of arrays of shape (L, m)
        ``K``: the mean-field q^l; ``V``: n_{l-1} Var(Khat^l) to leading order; ``shift``:
        E Khat^l - K^l = E q^l - K^l to O(1/n), from the curvature of f = <phi^2>_K (0 for
        linear, ReLU and leaky ReLU):
        shift^{l+1} = chi_par shift^l + C_W f''(K^l) (V^l / (2 n_{l-1}) + kappa_4^l / 6),
        kappa_4^l = (kappa_w - 3) C_W^2 <phi^4> / n_{l-1} the fourth cumulant of z^l given
        the layer below (0 for normal weights; NaN for non-normal weights and a fixed
        input); ``phi4``: <phi^4> of the layer below, <x^4> = 3 q0^2 at l = 1 for
        normal inputs, NaN for fixed ones (unknown here).
    """
    act, cb, cw, widths = net.activation_fn, net.bias_std ** 2, net.sigma_w2, net.widths
    excess = weight_kurtosis(net.distribution) - 3.0
    q0 = np.asarray(q0, dtype=np.float64)
    out = {name: np.empty((net.depth, q0.size)) for name in ("K", "V", "shift", "phi4")}
    k = cb + cw[0] * q0
    v = 2.0 * cw[0] ** 2 * q0 * q0 if normal_inputs else np.zeros_like(q0)
    shift = np.zeros_like(q0)
    phi4 = 3.0 * q0 * q0 if normal_inputs else np.full_like(q0, np.nan)
    for l in range(net.depth):
        out["K"][l], out["V"][l], out["shift"][l], out["phi4"][l] = k, v, shift, phi4
        if l + 1 == net.depth:
            break
        f, f4, slope, curvature = kernel_moments(act, k)
        var_khat = v / widths[l]
        # the fourth cumulant of z given the layer below (non-normal weights) moves
        # E phi(z)^2 by kappa_4 E[(phi^2)^(4)] / 24 = kappa_4 f''(K) / 6
        cumulant = excess * cw[l] ** 2 * phi4 / widths[l] if excess else 0.0
        with np.errstate(invalid="ignore"):
            # where Khat does not fluctuate (a fixed input at layer 1, or K = 0 where the
            # derivatives are not resolved) it passes no fluctuation on
            chi = cw[l + 1] * slope
            passed = np.where(v == 0.0, 0.0, chi * chi * v)
            moved = np.where(v == 0.0, 0.0, chi * shift + 0.5 * cw[l + 1] * curvature * var_khat)
            shift = moved + (cw[l + 1] * curvature * cumulant / 6.0 if excess else 0.0)
        v = cw[l + 1] ** 2 * (f4 - f * f) + widths[l + 1] / widths[l] * passed
        k = cb + cw[l + 1] * f
        phi4 = f4
    return out


def gradient_moments(net: Network) -> tuple[np.ndarray, np.ndarray]:
    """Exact (E[g^l], E[(g^l)^2]) for l = 1..L, each of shape (L,), where :func:`forms`
    says "exact product" for ``g_var_theory`` (normal weights; linear, or ReLU / leaky ReLU
    without bias).

    Given a live layer below, each phi'(z_j)^2 is 1 or a^2 with probability 1/2,
    independently of everything else (flipping a row of W flips z_j and nothing downstream
    sees its sign), so E g^2 / (E g)^2 = (1 + 2/n_L) prod_{k=l}^{L-1} (1 + nu/n_k). ReLU
    adds one thing the product leaves out: a layer whose n_m units are all negative
    (probability 2^-n_m) zeroes every z above it, and with them every gradient below the
    output, so for l < L E[g^l] and E[(g^l)^2] carry the factor prod_{m<l} (1 - 2^-n_m)
    (at width 2 a quarter of the networks lose their gradients at each layer).

    Parameters
    ----------
    net : Network
        The network (normal weights; linear, or ReLU / leaky ReLU without bias).

    Returns
    -------
    mean : numpy.ndarray
        E[g^l], shape (L,), relative to E[g^L] = 1.
    second : numpy.ndarray
        E[(g^l)^2], shape (L,).
    """
    relu = net.activation_fn.name == "relu"
    nu = 2.0 if net.activation_fn.name == "linear" else _nu(net)
    widths = np.asarray(net.widths[1:], dtype=np.float64)
    factors = np.append(1.0 + nu / widths[:-1], 1.0 + 2.0 / widths[-1])
    spread = np.cumprod(factors[::-1])[::-1]
    c2 = 1.0 if net.activation_fn.name == "linear" else _homogeneous_constants(net)[0]
    gains = widths[1:] * net.weight_var[1:] * c2
    free = np.append(np.cumprod(gains[::-1])[::-1], 1.0)
    # the output's cotangent is drawn whatever the forward pass did: layer L is always alive
    alive = np.append(np.cumprod(np.append(1.0, 1.0 - 0.5 ** widths[:-2])), 1.0) if relu else 1.0
    return alive * free, alive * free * free * spread


def _why_not(net: Network) -> "str | None":
    """Why no finite-width theory applies to the whole network, or None."""
    if net.residual is not None or net.norm is not None:
        return "no finite-width theory for residual streams or norms"
    if net.init == "orthogonal":
        return ("orthogonal weights: the rows of W are not independent, so the z_i^l are not "
                "iid given the layer below (not derived)")
    return None


def forms(net: Network, *, normal_inputs: bool, rows: bool = False,
          gradients: bool = True) -> dict[str, str]:
    """Which finite-width theory each column compares against, or why it is NaN.

    Parameters
    ----------
    net : Network
    normal_inputs : bool
        Fresh N(0, I) inputs per trial (else a fixed input or data-set rows).
    rows : bool
        Data-set rows of more than one length (the law is a mixture over rows).
    gradients : bool
        The run has gradients.

    Returns
    -------
    dict
        column name -> a short text: "exact product", "exact" (the moment recursion), "1/n
        (vertex recursion)", or "nan: <reason>".
    """
    reason = _why_not(net)
    if reason is not None:
        return dict.fromkeys(COLUMNS, f"nan: {reason}")
    name, normal = net.activation_fn.name, net.distribution == "normal"
    if name in HOMOGENEOUS:
        if not normal and not normal_inputs:
            forward = ("nan: non-normal weights need the inputs' mean fourth power, which "
                       "is not recorded (known for fresh N(0, I) inputs only)")
        elif normal and net.bias_std == 0.0:
            forward = "exact product"
        else:
            forward = "exact"
    elif rows and not normal:
        forward = ("nan: the 1/n theory of non-normal weights on data-set rows of several "
                   "lengths is not derived")
    else:
        forward = "1/n (vertex recursion)"
        if not normal and not normal_inputs:
            forward += "; layer 1 nan (non-normal weights need the inputs' mean x^4)"
    if not gradients:
        backward = "nan: the run has no gradients"
    elif not normal:
        backward = "nan: non-normal weights (not derived)"
    elif name == "linear" or (name in HOMOGENEOUS and net.bias_std == 0.0):
        backward = "exact product"
    elif name in HOMOGENEOUS:
        backward = "nan: ReLU-type activations with bias (no exact form; not derived)"
    else:
        backward = "nan: no finite-width theory of g for this activation (not derived)"
    if name in HOMOGENEOUS:
        mean = "exact (the mean-field map, at any width)"
    elif not normal and (rows or not normal_inputs):
        mean = ("nan: the 1/n shift of non-normal weights needs the inputs' mean x^4 (known "
                "for fresh N(0, I) inputs only)")
    else:
        mean = "1/n (mean shift)"
    return {"q_mean_theory": mean, "z_kurt_theory": forward, "q_var_theory": forward,
            "g_var_theory": backward}


def _law_moments(net: Network, normal_inputs: bool, several: bool, mean_only: bool,
                 q0: np.ndarray) -> list[np.ndarray]:
    """Per input law of length q0 (m,): [E q, E z^2, E z^4, E q^2], each (L, m) ([E q]
    alone if ``mean_only``), by the exact recursion or the 1/n one."""
    if normal_inputs:  # ||x||^2 / n_0 ~ q0 chi^2_{n_0} / n_0, x_j^4 averages 3 q0^2
        q0_square, x4 = q0 * q0 * (1.0 + 2.0 / net.widths[0]), 3.0 * q0 * q0
    else:  # a fixed input or a row: its mean fourth power is not known here
        q0_square, x4 = q0 * q0, np.full(q0.size, np.nan)
    if net.activation_fn.name in HOMOGENEOUS:
        second, khat_square, fourth = exact_moments(net, q0, q0_square, x4)
        mean = second
    else:
        m = vertex_moments(net, q0, normal_inputs)
        mean = m["K"] + m["shift"]
        # one input law: E Khat = K (its shift changes the kurtosis at O(1/n^2)); several:
        # their spread is O(1), so the O(1/n) shifts of the means enter at O(1/n)
        second = mean if several else m["K"]
        fan = np.asarray(net.widths[:-1], dtype=np.float64)[:, None]
        khat_square = second * second + m["V"] / fan
        excess = weight_kurtosis(net.distribution) - 3.0
        kappa = excess * net.sigma_w2[:, None] ** 2 * m["phi4"] / fan if excess else 0.0
        fourth = 3.0 * khat_square + kappa
    if mean_only:
        return [mean]
    n = np.asarray(net.widths[1:], dtype=np.float64)[:, None]
    return [mean, second, fourth, fourth / n + (1.0 - 1.0 / n) * khat_square]


def finite_width_columns(net: Network, *, normal_inputs: bool, q0=1.0, counts=None,
                         gradients: bool = True) -> dict[str, np.ndarray]:
    """``q_mean_theory``, ``z_kurt_theory``, ``q_var_theory`` and ``g_var_theory`` of a run,
    each of shape (L,).

    Parameters
    ----------
    net : Network
    normal_inputs : bool
        Fresh N(0, I) inputs per trial (``q0`` is then 1), else a fixed input or rows.
    q0 : float or array_like
        The input length ||x||^2 / n_0 (mean squared entry), or a data set's distinct row
        lengths.
    counts : array_like or None
        How many rows have each of ``q0``'s lengths (None: one each).
    gradients : bool
        Whether g was measured (else ``g_var_theory`` is NaN).

    Returns
    -------
    dict
        E q^l with its 1/n correction (in the units of q), the excess kurtosis of one unit of
        z^l (dimensionless), Var q^l and Var g^l (in the squared units of q and g), NaN
        where :func:`forms` gives a reason.
    """
    # an overflowing network overflows its theory too: inf or NaN there, as in q_theory,
    # beside the measured overflow flags, not numpy's warnings
    with np.errstate(all="ignore"):
        return _finite_width_columns(net, normal_inputs, q0, counts, gradients)


def _finite_width_columns(net: Network, normal_inputs: bool, q0, counts, gradients: bool
                          ) -> dict[str, np.ndarray]:
    nan = np.full(net.depth, np.nan)
    several = np.ndim(q0) > 0 and np.size(q0) > 1
    how = forms(net, normal_inputs=normal_inputs, rows=several, gradients=gradients)
    out = dict.fromkeys(COLUMNS, nan)
    forward = not how["z_kurt_theory"].startswith("nan")
    if forward or not how["q_mean_theory"].startswith("nan"):
        # the law of a trial is the mixture over input laws: average its moments
        moments = row_average(functools.partial(_law_moments, net, normal_inputs, several,
                                                not forward), q0, counts)
        if not how["q_mean_theory"].startswith("nan"):
            out["q_mean_theory"] = moments[0]
        if forward:
            _, second, fourth, q_square = moments
            out["z_kurt_theory"] = fourth / (second * second) - 3.0
            out["q_var_theory"] = q_square - second * second
    if not how["g_var_theory"].startswith("nan"):
        mean, second = gradient_moments(net)
        zero_row = (net.activation_fn.name != "linear" and net.bias_std == 0.0
                    and (np.asarray(q0) == 0).any())
        # an all-zero input keeps every z at 0, where phi'(0) decides, not the symmetry
        out["g_var_theory"] = nan if zero_row else second - mean * mean
    return out


def note(net: Network, columns, *, normal_inputs: bool, rows: bool = False,
         gradients: bool = True, assumed: bool = False) -> str:
    """One line for a table that shows some of :data:`COLUMNS`: which theory each compares
    against (see :func:`forms`) and what it is a theory of.

    ``columns`` are the finite-width columns shown; ``assumed`` says the inputs were taken
    for fresh N(0, I) ones because the file did not record them.

    Parameters
    ----------
    net : Network
        The network.
    columns : sequence of str
        The finite-width columns shown (some of :data:`COLUMNS`).
    normal_inputs : bool
        Fresh N(0, I) inputs per trial.
    rows : bool
        Data-set rows of more than one length.
    gradients : bool
        The run has gradients.
    assumed : bool
        The inputs were taken for fresh N(0, I) ones: the file did not record them.

    Returns
    -------
    str
        One sentence; columns sharing a text (e.g. why they are NaN) are named together,
        the text said once.
    """
    how = forms(net, normal_inputs=normal_inputs, rows=rows, gradients=gradients)
    inputs = "fresh N(0, I) inputs" if normal_inputs else (
        "the rows' mixture" if rows else "a fixed input")
    if assumed:
        inputs += " (assumed: the file does not record the inputs)"
    said: dict[str, list[str]] = {}  # each text once, with the columns it applies to
    for name in columns:
        said.setdefault(how[name], []).append(name)
    parts = [f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} NaN: {text[5:]}"
             if text.startswith("nan: ") else f"{', '.join(names)}: {text}"
             for text, names in said.items()]
    if not all(text.startswith("nan: ") for text in said):
        parts.append("exact forms are exact at any width, 1/n is off by O(1/n^2)")
    return f"finite-width theory of one trial's law, for {inputs}: {'; '.join(parts)}"
