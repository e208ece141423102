"""Finite-width theory (fastvar.finite_width) against hand-computed values, against
measurement on every engine, and, for the 1/n theory, against a numerically exact
reference that shows its error falling like 1/n^2.

The stats hold no fourth moments of per-network quantities, so the SE of a measured
z_kurt, q_var or g_var comes from R independent runs (different seeds): the spread of
their R estimates over sqrt(R).
"""
import math
import warnings

import numpy as np
import pytest

import fastvar
from fastvar import Network
from fastvar import finite_width as F
from fastvar.activations import Activation
from fastvar.theory import kernel_moments

from .helpers import assert_within_se

MEASURED = ("q_mean", "z_kurt", "q_var", "g_var")


def replicates(net, trials, reps, seed, **kw):
    """(the first Result, {column: (mean, SE)}) over ``reps`` runs with seeds seed + r."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvar.IncompleteStatisticsWarning)
        runs = [fastvar.simulate(net, trials, seed=seed + r, **kw) for r in range(reps)]
    values = {c: np.array([res[c] for res in runs]) for c in MEASURED}
    return runs[0], {c: (v.mean(axis=0), v.std(axis=0, ddof=1) / math.sqrt(reps))
                     for c, v in values.items()}


# ---- known answers by hand ---------------------------------------------------------------

def test_relu_and_linear_products_by_hand():
    net = Network(widths=[4, 8, 5], activation="relu", init="he")
    cols = F.finite_width_columns(net, normal_inputs=True)
    # m_1 = 1 + 2/4, m_2 = m_1 (1 + 5/8); z_kurt = 3 (m - 1); E q = 2 at every layer
    np.testing.assert_allclose(cols["z_kurt_theory"], [1.5, 3 * (1.5 * 1.625 - 1)], rtol=1e-13)
    # Var q = E q^2 ((1 + 2/n_l) m_l - 1)
    np.testing.assert_allclose(cols["q_var_theory"], [4 * (1.25 * 1.5 - 1), 4 * (1.4 * 2.4375 - 1)],
                               rtol=1e-13)
    np.testing.assert_allclose(cols["q_mean_theory"], [2.0, 2.0], rtol=1e-15)
    # gradients: E g^1 = n_2 Var(W^2) / 2 = 5 (2/8) / 2; Var g / E g^2 = (1 + 2/5)(1 + 5/8) - 1
    np.testing.assert_allclose(cols["g_var_theory"], [0.625 ** 2 * (1.4 * 1.625 - 1), 0.4],
                               rtol=1e-13)
    # a ReLU layer of width 2 is dead (all units negative) in a quarter of the networks,
    # and then every gradient below the output is 0: E g^2 = (3/4) 2 (2/4) / 2
    dead = Network(widths=[3, 2, 4, 2], activation="relu", init="he")
    mean, second = F.gradient_moments(dead)
    np.testing.assert_allclose(mean, [1.0, 0.375, 1.0], rtol=1e-15)
    np.testing.assert_allclose(second - mean * mean,
                               [2.25 * 3.5 * 2 - 1, 0.75 * 0.25 * 2 * 2.25 - 0.375 ** 2, 1.0],
                               rtol=1e-13)
    fixed = F.finite_width_columns(net, normal_inputs=False, q0=1.0)
    np.testing.assert_allclose(fixed["z_kurt_theory"], [0.0, 3 * 0.625], atol=1e-15)
    linear = Network(widths=[3, 6, 4], activation="linear", init="lecun")
    # (1 + 2/3)(1 + 2/6) = 20/9
    np.testing.assert_allclose(F.finite_width_columns(linear, normal_inputs=True)
                               ["z_kurt_theory"], [2.0, 3 * 11 / 9], rtol=1e-13)


def test_leaky_relu_nu_and_weight_kurtosis():
    a = 0.3
    net = Network(widths=[5, 7, 9], activation=f"leaky_relu({a})", init=2.0)
    nu = (5 + 5 * a ** 4 - 2 * a * a) / (1 + a * a) ** 2
    z_kurt = F.finite_width_columns(net, normal_inputs=False, q0=2.0)["z_kurt_theory"]
    np.testing.assert_allclose(z_kurt, [0.0, 3 * nu / 7], rtol=1e-13)
    assert F.weight_kurtosis("uniform") == pytest.approx(1.8, rel=1e-15)
    x = np.linspace(-2.0, 2.0, 400001)
    density = np.exp(-0.5 * x * x)
    second, fourth = np.trapezoid(x ** 2 * density, x), np.trapezoid(x ** 4 * density, x)
    kappa = fourth * np.trapezoid(density, x) / second ** 2
    assert F.weight_kurtosis("truncated_normal") == pytest.approx(kappa, rel=1e-9)


@pytest.mark.parametrize("act", ["relu", "linear", "leaky_relu(0.1)"])
def test_exact_recursion_without_bias_is_the_product(act):
    widths = [3, 2, 7, 4, 16, 5]
    net = Network(widths=widths, activation=act, init=1.7)
    c2, c4 = {"relu": (0.5, 0.5), "linear": (1.0, 1.0),
              "leaky_relu(0.1)": (0.505, 0.50005)}[act]
    nu = 3 * c4 / c2 ** 2 - 1
    for normal, start in ((True, 1 + 2 / widths[0]), (False, 1.0)):
        m = start * np.cumprod([1.0] + [1 + nu / n for n in widths[1:-1]])
        cols = F.finite_width_columns(net, normal_inputs=normal)
        np.testing.assert_allclose(cols["z_kurt_theory"], 3 * (m - 1), rtol=1e-12, atol=1e-15)
        q = cols["q_mean_theory"]
        ratio = (1 + 2 / np.array(widths[1:])) * m - 1
        np.testing.assert_allclose(cols["q_var_theory"], ratio * q * q, rtol=1e-12, atol=1e-15)


def test_vertex_recursion_of_linear_is_the_first_order_of_the_product():
    # linear: V^{l+1} / (n_l K^2) = 2 / n_l + V^l / (n_{l-1} K^2), exactly sum 2/n_k
    widths = [6, 9, 4, 11, 5]
    net = Network(widths=widths, activation="linear", init="lecun")
    m = F.vertex_moments(net, np.array([1.3]), normal_inputs=True)
    fan = np.array(widths[:-1], dtype=float)
    np.testing.assert_allclose(m["V"][:, 0] / (fan * m["K"][:, 0] ** 2),
                               np.cumsum(2 / fan), rtol=1e-12)
    np.testing.assert_allclose(m["shift"], 0.0, atol=1e-10)  # f'' by quadrature: ~1e-12


def test_columns_are_nan_with_a_reason_where_no_theory_applies():
    for net in (Network(widths=[4, 4, 4], activation="tanh", residual=0.5, norm="layer"),
                Network(widths=[4, 4, 4], activation="relu", init="orthogonal")):
        cols = F.finite_width_columns(net, normal_inputs=True)
        assert all(np.isnan(cols[c]).all() for c in F.COLUMNS)
        assert all(text.startswith("nan: ") for text in F.forms(net, normal_inputs=True).values())
    uniform = Network(widths=[4, 4, 4], activation="relu", distribution="uniform")
    how = F.forms(uniform, normal_inputs=False)
    assert how["z_kurt_theory"].startswith("nan: ") and "fourth power" in how["z_kurt_theory"]
    assert np.isnan(F.finite_width_columns(uniform, normal_inputs=False)["z_kurt_theory"]).all()
    assert F.forms(uniform, normal_inputs=True)["z_kurt_theory"] == "exact"


# ---- exact forms against measurement, every engine ----------------------------------------

ROWS = np.random.default_rng(5).normal(size=(6, 3)) * np.array([[0.5], [1], [2], [1], [3], [1]])
EXACT_CASES = [
    # (network keywords, simulate keywords, trials, reps)
    (dict(widths=[3, 2, 4, 2], activation="relu", init="he"), dict(engine="numpy"), 3000, 8),
    (dict(widths=[3, 5, 4], activation="linear", init="lecun", bias_std=0.5),
     dict(engine="numpy", inputs=ROWS[1]), 3000, 8),
    (dict(widths=[8, 16, 8, 12], activation="relu", init="he", distribution="uniform",
          bias_std=0.3), dict(engine="direct"), 4000, 8),
    (dict(widths=[3, 16, 16, 16], activation="leaky_relu(0.2)", init="he"),
     dict(engine="direct", inputs=ROWS, inputs_per_network=2), 4000, 8),
    (dict(widths=[64, 32, 64, 64], activation="relu", init="he"), dict(engine="exact"),
     8000, 8),
    (dict(widths=[16, 2, 8, 16], activation="relu", init="he", bias_std=0.4),
     dict(engine="exact", inputs=ROWS[2].repeat(16 // 3 + 1)[:16]), 8000, 8),
]


@pytest.mark.parametrize("net_kw, sim_kw, trials, reps", EXACT_CASES)
def test_exact_forms_agree_with_measurement(net_kw, sim_kw, trials, reps):
    net = Network(**net_kw)
    res, measured = replicates(net, trials, reps, seed=100, **sim_kw)
    for column in MEASURED:
        theory = res[column + "_theory" if column != "q_mean" else "q_mean_theory"]
        if np.isnan(theory).all():
            continue  # g of a biased ReLU or of uniform weights: no exact form
        assert_within_se(measured[column][0], theory, measured[column][1], what=column)


def test_measured_columns_obey_the_normal_weight_identity():
    # normal weights, any activation: Var q = (z_kurt / 3 + (2 / n)(1 + z_kurt / 3)) (E q)^2
    net = Network(widths=[4, 5, 3, 6], activation="tanh", init=2.5, bias_std=0.3)
    _, m = replicates(net, 4000, 8, seed=7, engine="exact")
    n = np.array(net.widths[1:])
    kurt, q = m["z_kurt"][0] / 3, m["q_mean"][0]
    predicted = (kurt + 2 / n * (1 + kurt)) * q * q
    assert_within_se(m["q_var"][0], predicted, m["q_var"][1], what="q_var identity")


# ---- the 1/n theory: measurement, and a numerically exact reference -----------------------

@pytest.mark.parametrize("act, init", [("tanh", "lecun"), ("gelu", "he")])
def test_one_over_n_theory_agrees_with_measurement_at_widths_64_to_1024(act, init):
    for width in (64, 256, 1024):
        net = fastvar.mlp(width, 4, activation=act, init=init, bias_std=0.2)
        res, m = replicates(net, 2000, 6, seed=width, engine="exact")
        for column in MEASURED[:3]:
            assert_within_se(m[column][0], res[column + "_theory"], m[column][1],
                             what=f"{act} width {width} {column}")


_T, _W = np.polynomial.legendre.leggauss(40)


def _grid(half_width: float, pieces: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [-half_width, half_width]."""
    edges = np.linspace(-half_width, half_width, pieces + 1)
    mid, half = (edges[1:] + edges[:-1]) / 2, (edges[1:] - edges[:-1]) / 2
    return (mid[:, None] + half[:, None] * _T).ravel(), (half[:, None] * _W).ravel()


def _gaussian_average(act, power, k):
    """E[phi(u)^power], u ~ N(0, K), continued analytically to complex K (Re 1/K > 0):
    the integral of phi(u)^power exp(-u^2 / 2K) / sqrt(2 pi K) over real u."""
    k = np.asarray(k, dtype=complex)
    u, w = _grid(16.0 * math.sqrt(np.abs(k).max()))
    density = np.exp(-u ** 2 / (2 * k[:, None])) / np.sqrt(2 * np.pi * k[:, None])
    return density @ (w * act(u) ** power)


def _taylor(function, centre, radius, order, points=64):
    """G^(k)(centre) / k! for k <= order by the Cauchy integral on a circle (trapezoid)."""
    values = function(centre + radius * np.exp(2j * np.pi * np.arange(points) / points))
    return (np.fft.fft(values)[:order + 1] / points / radius ** np.arange(order + 1)).real


def _moments_from_cumulants(kappa):
    """Central moments m_0..m_K from cumulants kappa_0..kappa_K (kappa_1 = 0)."""
    m = np.zeros(kappa.size)
    m[0] = 1.0
    for j in range(1, kappa.size):
        m[j] = sum(math.comb(j - 1, i - 1) * kappa[i] * m[j - i] for i in range(1, j + 1))
    return m


def _expectation(function, centre, moments):
    """E G(X) from X's central moments by the Taylor series of G at E X = centre: an
    asymptotic series in 1/n whose terms of order k fall like n^(-k/2); the tails beyond
    its radius of convergence weigh exp(-O(n))."""
    return _taylor(function, centre, centre / 3, moments.size - 1) @ moments


def three_layer_reference(act_name, widths, cw, cb, q0, order=12):
    """Exact E z^2, E z^4 / 3 and E q^2 at layer 3 of a network fed one fixed input.

    Khat^2 = C_b + C_W S with S the mean of n_1 iid Y = phi(sqrt(K^1) g)^2: its central
    moments follow exactly from Y's cumulants (kappa_j(S) = kappa_j(Y) / n_1^(j-1)), and
    E G(Khat^2) for the analytic G = <phi^2>, <phi^2>^2, <phi^4> is the Taylor series of G
    at E Khat^2 against them. Layer 3 given Khat^2 is exact: z ~ N(0, Khat^2) iid.
    """
    act = Activation.parse(act_name)
    n1, n2, n3 = widths[1:4]
    u, w = _grid(14.0, 40)
    w = w * np.exp(-u * u / 2) / math.sqrt(2 * math.pi)
    y = act(math.sqrt(cb + cw[0] * q0) * u) ** 2
    mean_y = w @ y
    central = np.array([w @ (y - mean_y) ** j for j in range(order + 1)])
    kappa = np.zeros(order + 1)
    for j in range(2, order + 1):
        kappa[j] = central[j] - sum(math.comb(j - 1, i - 1) * kappa[i] * central[j - i]
                                    for i in range(2, j - 1))
    j = np.arange(order + 1)
    kappa = kappa * cw[1] ** j / float(n1) ** np.maximum(j - 1, 0)
    moments = _moments_from_cumulants(kappa)
    centre = cb + cw[1] * mean_y

    def f(k):
        return _gaussian_average(act, 2, k)

    f0 = f([centre])[0].real
    mean_f = _expectation(f, centre, moments)
    var_f = _expectation(lambda k: (f(k) - f0) ** 2, centre, moments) - (mean_f - f0) ** 2
    mean_f4 = _expectation(lambda k: _gaussian_average(act, 4, k), centre, moments)
    second = cb + cw[2] * mean_f
    khat_square = (cb * cb + 2 * cb * cw[2] * mean_f
                   + cw[2] ** 2 * (mean_f4 / n2 + (1 - 1 / n2) * (var_f + mean_f ** 2)))
    return {"q_mean": second, "z_kurt": 3 * khat_square / second ** 2 - 3,
            "q_var": khat_square * (1 + 2 / n3) - second ** 2}


def _chain_monte_carlo(act_name, widths, cw, cb, q0, samples, seed):
    """(z_kurt, SE) at layer 3 by Monte Carlo of Khat^2 (``samples`` draws of the mean of
    n_1 values of Y), then exact Gaussian averages over layer 2 given Khat^2."""
    act = Activation.parse(act_name)
    n1, n2 = widths[1:3]
    rng = np.random.default_rng(seed)
    s = np.concatenate([np.mean(act(math.sqrt(cb + cw[0] * q0)
                                    * rng.standard_normal((samples // 10, n1))) ** 2, axis=1)
                        for _ in range(10)])
    k2 = cb + cw[1] * s
    f, f4 = kernel_moments(act, k2)[:2]
    first = cb + cw[2] * f
    second = cb * cb + 2 * cb * cw[2] * f + cw[2] ** 2 * (f4 / n2 + (1 - 1 / n2) * f * f)
    a, b = first.mean(), second.mean()
    kurt = 3 * b / a ** 2 - 3
    # delta method: d kurt = 3 (db / a^2 - 2 b da / a^3)
    influence = 3 * (second / a ** 2 - 2 * b * first / a ** 3)
    return kurt, influence.std(ddof=1) / math.sqrt(samples)


@pytest.mark.parametrize("act, init, width", [("tanh", 2.0, 16), ("gelu", 1.0, 64)])
def test_reference_agrees_with_a_monte_carlo_of_the_chain(act, init, width):
    widths = [16, width, width, width]
    cw = (init,) * 3
    exact = three_layer_reference(act, widths, cw, 0.04, 1.0)["z_kurt"]
    sampled, se = _chain_monte_carlo(act, widths, cw, 0.04, 1.0, 100000, seed=3)
    assert_within_se(sampled, exact, se, what=f"{act} chain Monte Carlo")
    # the Monte Carlo resolves the 1/n theory's error at this width, so the agreement above
    # checks the reference to better than that error
    net = Network(widths=widths, activation=act, init=init, bias_std=0.2)
    theory = F.finite_width_columns(net, normal_inputs=False)["z_kurt_theory"][2]
    assert abs(theory - sampled) > 5 * se


@pytest.mark.parametrize("act", ["tanh", "gelu"])
def test_one_over_n_error_falls_like_one_over_n_squared(act):
    widths = np.array([64, 128, 256, 512, 1024])
    gaps = {c: [] for c in MEASURED[:3]}
    for n in widths:
        net = Network(widths=[n] * 4, activation=act, init="lecun", bias_std=0.2)
        theory = F.finite_width_columns(net, normal_inputs=False)
        exact = three_layer_reference(act, [n] * 4, net.sigma_w2, 0.04, 1.0)
        for c in gaps:
            gaps[c].append(theory[c + "_theory"][2] - exact[c])
    for c, gap in gaps.items():
        gap = np.array(gap)
        slope = np.polyfit(np.log(widths), np.log(np.abs(gap)), 1)[0]
        scaled = gap * widths ** 2
        assert -2.05 < slope < -1.95, (c, slope, scaled)
        assert np.all(np.sign(scaled) == np.sign(scaled[0])), (c, scaled)
        assert np.ptp(scaled) < 0.05 * np.abs(scaled).max(), (c, scaled)


def test_data_set_theory_is_the_mixture_over_rows_also_beyond_256_lengths():
    # 2000 distinct lengths: averaged by Chebyshev interpolation; by hand: row by row
    net = Network(widths=[8, 32, 16, 24], activation="gelu", init="he", bias_std=0.1)
    q0 = np.exp(np.random.default_rng(4).normal(0.0, 0.6, 2000))
    cols = F.finite_width_columns(net, normal_inputs=False, q0=q0)
    m = F.vertex_moments(net, q0, normal_inputs=False)
    fan, n = np.array(net.widths[:-1])[:, None], np.array(net.widths[1:])[:, None]
    first = m["K"] + m["shift"]
    second = first ** 2 + m["V"] / fan
    mean = first.mean(axis=1)
    np.testing.assert_allclose(cols["q_mean_theory"], mean, rtol=1e-11)
    np.testing.assert_allclose(cols["z_kurt_theory"], 3 * second.mean(axis=1) / mean ** 2 - 3,
                               rtol=1e-9)
    q_square = 3 * second / n + (1 - 1 / n) * second
    np.testing.assert_allclose(cols["q_var_theory"], q_square.mean(axis=1) - mean ** 2,
                               rtol=1e-9)


def test_results_carry_the_columns_the_input_kind_and_the_note(tmp_path):
    net = Network(widths=[6, 8, 8], activation="tanh", bias_std=0.1)
    fresh = fastvar.simulate(net, 64, seed=1, engine="exact")
    fixed = fastvar.simulate(net, 64, seed=1, engine="exact", inputs=np.ones(6))
    assert fresh.normal_inputs is True and fixed.normal_inputs is False
    # a fixed input has no layer-1 fluctuation: Gaussian z at layer 1
    assert fixed["z_kurt_theory"][0] == 0.0 < fresh["z_kurt_theory"][0]
    for res in (fresh, fixed):
        back = fastvar.Result.from_dict(res.to_dict())
        assert back.normal_inputs == res.normal_inputs
        for c in F.COLUMNS:
            np.testing.assert_array_equal(back[c], res[c])
    # a file of an earlier version does not say: no rows and q0 = 1 are read as fresh inputs
    old = {k: v for k, v in fixed.to_dict().items() if k not in ("normal_inputs", "format")}
    legacy = fastvar.Result.from_dict(old)
    assert legacy.normal_inputs is None and legacy.fresh_inputs
    assert "assumed" in legacy.table(["z_kurt", "z_kurt_theory"])
    text = " ".join(fresh.table(["z_kurt", "z_kurt_theory", "g_var", "g_var_theory"]).split())
    assert "z_kurt_theory: 1/n (vertex recursion)" in text and "g_var_theory is NaN: " in text
    fresh.to_csv(tmp_path / "r.csv")
    header = (tmp_path / "r.csv").read_text().splitlines()[0].split(",")
    assert set(F.COLUMNS) <= set(header)


def test_an_overflowing_network_gives_no_numpy_warnings_from_the_theory():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fastvar.simulate(fastvar.mlp(32, 8, init=1e150), 200, seed=0)
        for name in F.COLUMNS:
            res[name]
    assert not [str(w.message) for w in caught
                if w.filename.endswith(("fastvar/finite_width.py", "fastvar\\finite_width.py"))]
