"""Mean-field theory against closed forms, an independent integrator, and its own identities."""
import json
import math

import numpy as np
import pytest
from scipy import integrate

import fastvar
from fastvar import Network, mlp
from fastvar import theory as T

from .helpers import assert_within_se

QS = np.array([0.0, 1e-6, 1e-3, 0.5, 1.0, 7.0, 1e4])


def test_gaussian_moments_closed_forms():
    m, m2, d2 = T.gaussian_moments("relu", QS)
    np.testing.assert_allclose(m, np.sqrt(QS / (2 * np.pi)), rtol=1e-12, atol=1e-100)
    np.testing.assert_allclose(m2, QS / 2, rtol=1e-12)
    np.testing.assert_allclose(d2, 0.5, rtol=1e-12)
    m, m2, d2 = T.gaussian_moments("linear", QS)
    np.testing.assert_allclose(m, 0.0, atol=1e-12)
    np.testing.assert_allclose(m2, QS, rtol=1e-12)
    np.testing.assert_allclose(d2, 1.0, rtol=1e-12)
    # erf: E[erf(z)^2] = (2/pi) arcsin(2q / (1 + 2q)), E[erf'(z)^2] = 4 / (pi sqrt(1 + 4q))
    m, m2, d2 = T.gaussian_moments("erf", QS)
    np.testing.assert_allclose(m, 0.0, atol=1e-12)
    np.testing.assert_allclose(m2, 2 / np.pi * np.arcsin(2 * QS / (1 + 2 * QS)),
                               rtol=1e-11, atol=1e-15)
    np.testing.assert_allclose(d2, 4 / (np.pi * np.sqrt(1 + 4 * QS)), rtol=1e-11)
    m, m2, d2 = T.gaussian_moments("leaky_relu(0.2)", 3.0)
    assert (m2, d2) == pytest.approx((3.0 * 1.04 / 2, 1.04 / 2), rel=1e-12)


@pytest.mark.parametrize("name", ["tanh", "gelu", "elu", "softplus", "sigmoid"])
@pytest.mark.parametrize("q", [0.3, 2.5])
def test_gaussian_moments_match_adaptive_integration(name, q):
    from fastvar import Activation

    act = Activation.parse(name)

    def expect(f):
        def dens(x):
            return f(x) * math.exp(-x * x / (2 * q)) / math.sqrt(2 * math.pi * q)

        return sum(integrate.quad(dens, a, b, epsabs=1e-14, epsrel=1e-13)[0]
                   for a, b in ((-np.inf, 0.0), (0.0, np.inf)))

    got = T.gaussian_moments(name, q)
    want = (expect(lambda x: float(act(x))), expect(lambda x: float(act(x)) ** 2),
            expect(lambda x: float(act.derivative(x)) ** 2))
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-13)


def test_gaussian_moments_keep_shape_and_reject_bad_q():
    out = T.gaussian_moments("tanh", np.ones((2, 3)))
    assert all(o.shape == (2, 3) for o in out)
    with pytest.raises(ValueError, match="q"):
        T.gaussian_moments("tanh", -1.0)
    with pytest.raises(ValueError, match="activation"):
        T.gaussian_moments("tanhh", 1.0)


def test_variance_map_linear_and_relu_he():
    s, q0, L = 1.3, 0.7, 6
    np.testing.assert_allclose(T.variance_map(mlp(50, L, activation="linear", init=s), q0),
                               s ** np.arange(1, L + 1) * q0, rtol=1e-12)
    # with a bias: q^l = s q^{l-1} + b^2, a geometric series towards b^2 / (1 - s)
    q = T.variance_map(mlp(50, L, activation="linear", init=0.5, bias_std=0.3), q0)
    want = [0.5 * q0 + 0.09]
    for _ in range(L - 1):
        want.append(0.5 * want[-1] + 0.09)
    np.testing.assert_allclose(q, want, rtol=1e-12)
    # He ReLU: q^1 = 2 q0 (the input is not rectified), then E[relu(z)^2] = q/2 keeps it there
    np.testing.assert_allclose(T.variance_map(mlp(100, 30), q0), 2 * q0, rtol=1e-12)


def test_maps_respect_per_layer_widths():
    net = Network([10, 30, 5], activation="linear", init="xavier")
    sw2 = [10 * 2 / 40, 30 * 2 / 35]
    np.testing.assert_allclose(T.variance_map(net, 2.0), [sw2[0] * 2.0, sw2[1] * sw2[0] * 2.0],
                               rtol=1e-12)
    # backward: fan-out n_l times Var(W^l), not sigma_w2 = fan-in times Var(W^l)
    np.testing.assert_allclose(T.gradient_map(net), [5 * 2 / 35, 1.0], rtol=1e-12)


def test_gradient_map_closed_forms():
    np.testing.assert_allclose(T.gradient_map(mlp(64, 12)), 1.0, rtol=1e-12)
    # Xavier on equal widths is LeCun: each ReLU layer halves E[g]
    g = T.gradient_map(mlp(64, 5, init="xavier"))
    np.testing.assert_allclose(g, 0.5 ** np.arange(4, -1, -1), rtol=1e-12)
    # erf: the factor per layer is sigma_w2 * 4 / (pi sqrt(1 + 4 q^{l-1}))
    net = mlp(20, 4, activation="erf", init=2.0, bias_std=0.5)
    q, g = T.variance_map(net, 1.5), T.gradient_map(net, 1.5)
    np.testing.assert_allclose(g[:-1] / g[1:], 8 / (np.pi * np.sqrt(1 + 4 * q[:-1])), rtol=1e-11)
    assert g[-1] == 1.0


def test_fixed_point_closed_forms():
    assert T.fixed_point("relu", 1.5, 0.1) == pytest.approx((0.1 / (1 - 0.75), 0.75), rel=1e-12)
    assert T.fixed_point("linear", 0.5, 1.0) == pytest.approx((2.0, 0.5), rel=1e-12)
    # He ReLU without bias: every q is fixed and chi_1 = 1
    assert T.fixed_point("relu", 2.0, 0.0, q0=3.0) == pytest.approx((3.0, 1.0), rel=1e-12)
    q_star, chi = T.fixed_point("tanh", 0.5, 0.0)
    assert q_star < 1e-25 and chi == pytest.approx(0.5, rel=1e-12)


@pytest.mark.parametrize("sw2, sb2", [(1.5, 0.05), (4.0, 0.0), (0.8, 0.3)])
def test_fixed_point_solves_the_erf_closed_form(sw2, sb2):
    q, chi = T.fixed_point("erf", sw2, sb2, q0=5.0)
    assert q == pytest.approx(sw2 * 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q)) + sb2, rel=1e-12)
    assert chi == pytest.approx(sw2 * 4 / (np.pi * np.sqrt(1 + 4 * q)), rel=1e-12)


def test_no_fixed_point_is_a_clear_error():
    with pytest.raises(ValueError, match="no fixed point.*sigma_w2 < 2"):
        T.fixed_point("relu", 2.0, 0.1)
    with pytest.raises(ValueError, match="no fixed point"):
        T.fixed_point("relu", 3.0, 0.0)
    with pytest.raises(ValueError, match="no fixed point"):
        T.fixed_point("gelu", 5.0, 0.0)
    with pytest.raises(ValueError, match="sigma_w2"):
        T.fixed_point("tanh", 0.0, 0.0)
    with pytest.raises(TypeError, match="sigma_b2"):
        T.fixed_point("tanh", 1.0, "0.1")


def test_critical_line():
    assert T.critical_sigma_w2("tanh", 0.0) == pytest.approx(1.0, rel=1e-9)
    assert T.critical_sigma_w2("relu", 0.3) == pytest.approx(2.0, rel=1e-9)
    assert T.critical_sigma_w2("linear") == pytest.approx(1.0, rel=1e-9)
    assert T.critical_sigma_w2("leaky_relu(0.2)") == pytest.approx(2 / 1.04, rel=1e-9)
    assert T.critical_sigma_w2("erf") == pytest.approx(np.pi / 4, rel=1e-9)  # E[erf'(0)^2] = 4/pi
    sw2 = T.critical_sigma_w2("tanh", 0.05)
    assert sw2 > 1.0 and T.fixed_point("tanh", sw2, 0.05)[1] == pytest.approx(1.0, abs=1e-9)


def test_depth_scales():
    xi = -1 / math.log(0.75)
    assert T.depth_scales("relu", 1.5, 0.1) == pytest.approx((xi, xi), rel=1e-10)
    assert T.depth_scales("relu", 2.0, 0.0) == (math.inf, math.inf)
    assert T.depth_scales("tanh", T.critical_sigma_w2("tanh", 0.05), 0.05)[1] > 1e6


# ordered: c* = 1, start 1e-6 from it; chaotic: c* is unknown, so go deep
@pytest.mark.parametrize("sw2, c0, depth", [(0.8, 1 - 1e-6, 4), (4.0, 0.5, 120)])
def test_depth_scales_are_the_decay_rates_of_the_maps(sw2, c0, depth):
    sb2 = 0.05
    xi_q, xi_c = T.depth_scales("tanh", sw2, sb2)
    q_star = T.fixed_point("tanh", sw2, sb2)[0]
    q0 = (q_star - sb2) / sw2  # makes q^1 = q*

    def net(depth):
        return mlp(10, depth, activation="tanh", init=sw2, bias_std=math.sqrt(sb2))

    # near the fixed points the maps are linear: differences shrink by exp(-1/xi) per layer
    dq = np.diff(T.variance_map(net(4), q0 * (1 + 1e-6)))
    assert dq[2] / dq[1] == pytest.approx(math.exp(-1 / xi_q), rel=1e-5)
    dc = np.diff(T.correlation_map(net(depth), c0, q0))
    assert dc[-1] / dc[-2] == pytest.approx(math.exp(-1 / xi_c), rel=1e-5)


def test_correlation_map_relu_he_is_the_arccos_kernel():
    c0, L = 0.2, 8
    c, want = T.correlation_map(mlp(30, L), c0, q0=0.4), [c0]
    for _ in range(L - 1):
        theta = math.acos(want[-1])
        want.append((math.sin(theta) + (math.pi - theta) * want[-1]) / math.pi)
    np.testing.assert_allclose(c, want, rtol=1e-12)
    np.testing.assert_allclose(T.correlation_map(mlp(30, 4, activation="tanh"), 1.0), 1.0,
                               rtol=1e-12)


def test_correlation_map_rejects_bad_input():
    with pytest.raises(ValueError, match="c0"):
        T.correlation_map(mlp(10, 2), 1.5)
    with pytest.raises(ValueError, match="q0 must be > 0"):
        T.correlation_map(mlp(10, 2), 0.5, q0=0.0)
    with pytest.raises(TypeError, match="q0"):  # one length for both inputs, not a data set
        T.correlation_map(mlp(10, 2), 0.5, q0=np.ones(3))


def test_correlation_map_is_nan_where_q_overflows_or_underflows():
    over = T.correlation_map(mlp(16, 6, activation="relu", init=1e100), 0.5)
    assert np.isfinite(over[:3]).all() and np.isnan(over[3:]).all()
    under = T.correlation_map(mlp(16, 4, activation="linear", init=1e-200), 0.5)
    assert under[0] == pytest.approx(0.5) and np.isnan(under[1:]).all()


def test_bounded_activations_at_huge_q_follow_their_asymptotics():
    # E[tanh'(z)^2] for z ~ N(0, q) -> (integral of sech^4 = 4/3) / sqrt(2 pi q)
    for q in (1e28, 1e30, 1e60, 1e100):
        got = T.gaussian_moments("tanh", q)[2]
        assert got == pytest.approx(4 / 3 / np.sqrt(2 * np.pi * q), rel=1e-6)
    with pytest.raises(TypeError, match="Network"):
        T.variance_map([10, 10])


def test_maps_overflow_to_inf_rather_than_fail():
    net = Network([3, 3, 3, 3], activation="linear", init=1e200)
    with np.errstate(over="raise"):  # quietly: the overflow is expected and handled
        q, g = T.variance_map(net), T.gradient_map(net)
    assert q[0] == 1e200 and np.isinf(q[1:]).all() and np.isinf(g[0])


def _assert_within_5_se(res, kinds):
    for kind in kinds:
        assert_within_se(res[f"{kind}_mean"], res[f"{kind}_theory"], res[f"{kind}_mean_se"],
                         k=5.0, what=kind)


@pytest.mark.parametrize("kwargs", [
    dict(activation="relu", init="he"),
    dict(activation="tanh", init="xavier", gain=5 / 3, bias_std=0.3),
    dict(activation="erf", init=1.5, bias_std=0.5),
])
def test_theory_matches_the_engines_at_large_width(kwargs):
    # at width 1000 the finite-width corrections (order 1/n per layer) stay below 1 SE here
    res = fastvar.simulate(mlp(1000, 6, **kwargs), 400, seed=11, engine="auto")
    np.testing.assert_array_equal(res.q_theory, T.variance_map(res.network, res.input_q0))
    np.testing.assert_array_equal(res.g_theory, T.gradient_map(res.network, res.input_q0))
    _assert_within_5_se(res, "qg")


@pytest.mark.parametrize("kwargs, gradients", [
    (dict(activation="relu", init="xavier"), True),  # backward uses the fan-out n_l, not n_{l-1}
    (dict(activation="tanh", init="orthogonal", gain=1.2, bias_std=0.1), False),
])
def test_theory_matches_the_engines_on_unequal_widths(kwargs, gradients):
    net = Network([300, 600, 200, 400, 300], **kwargs)
    res = fastvar.simulate(net, 400, seed=3, engine="auto", gradients=gradients)
    _assert_within_5_se(res, "qg" if gradients else "q")


def test_result_theory_uses_the_input_length_and_skips_gradients_when_off():
    net = Network([4, 6, 5], activation="tanh", init="lecun", bias_std=0.2)
    res = fastvar.simulate(net, 20, seed=0, engine="numpy", inputs=[1.0, -2.0, 3.0, 0.5],
                           gradients=False)
    assert res.input_q0 == pytest.approx(14.25 / 4)
    np.testing.assert_allclose(res.q_theory, T.variance_map(net, 14.25 / 4), rtol=1e-15)
    assert np.isnan(res.g_theory).all()
    assert "q_theory" in res.table() and "g_theory" not in res.table()


def _row_maps_by_hand(net, q0):
    """Per-row q and g maps (L, rows), written out from gaussian_moments: the brute force."""
    sw2, sb2, act = net.sigma_w2, net.bias_std ** 2, net.activation
    q, second = [], np.asarray(q0, dtype=np.float64)
    for s in sw2:
        q.append(s * second + sb2)
        second = T.gaussian_moments(act, q[-1])[1]
    fan_out_var = np.asarray(net.widths[2:]) * net.weight_var[1:]
    g = [np.ones_like(second)]
    for l in range(net.depth - 2, -1, -1):
        g.insert(0, g[0] * fan_out_var[l] * T.gaussian_moments(act, q[l])[2])
    return np.array(q), np.array(g)


@pytest.mark.parametrize("rows", [40, 3000])  # exact on distinct lengths; interpolated
def test_data_set_theory_is_the_row_average_of_the_maps(rows):
    net = mlp(50, 8, activation="tanh", init="xavier", gain=1.5, bias_std=0.1)
    q0 = 10.0 ** np.random.default_rng(1).uniform(-2, 2, rows)  # very different norms
    q, g = T.mean_field_maps(net, q0)
    want_q, want_g = (m.mean(axis=1) for m in _row_maps_by_hand(net, q0))
    np.testing.assert_allclose(q, want_q, rtol=1e-12)
    np.testing.assert_allclose(g, want_g, rtol=1e-12)
    np.testing.assert_array_equal(T.variance_map(net, q0), q)
    np.testing.assert_array_equal(T.gradient_map(net, q0), g)
    # Jensen: past layer 1 (affine in q0) the map of the mean length is far off for tanh
    assert np.all(np.abs(T.variance_map(net, q0.mean())[1:4] / q[1:4] - 1) > 0.1)
    # counts weigh repeated lengths: the same as listing every row
    np.testing.assert_allclose(T.variance_map(net, q0[:3], counts=[1, 2, 1]),
                               T.variance_map(net, q0[[0, 1, 1, 2]]), rtol=1e-14)


def test_data_set_theory_of_homogeneous_activations_is_the_map_of_the_mean():
    net = mlp(50, 5, activation="leaky_relu(0.1)", init=1.7, bias_std=0.2)
    q0 = np.array([0.0, 0.5, 3.0, 40.0])
    np.testing.assert_allclose(T.variance_map(net, q0), _row_maps_by_hand(net, q0)[0].mean(1),
                               rtol=1e-13)


def test_data_set_theory_of_100000_rows_evaluates_few_maps(monkeypatch):
    # fast because the maps are evaluated at a few Chebyshev nodes, not at 100 000 starts
    # (about 0.1 s; timings belong in benchmarks, so this counts the starts instead)
    net = mlp(256, 20, activation="tanh", init="xavier", gain=1.2)
    q0 = np.exp(np.random.default_rng(2).normal(0.0, 0.5, 100_000))  # all distinct
    starts = []
    real = T._maps
    monkeypatch.setattr(T, "_maps", lambda n, q, g: starts.append(q.size) or real(n, q, g))
    q, g = T.mean_field_maps(net, q0)
    assert sum(starts) < 1000 and np.isfinite(q).all() and np.isfinite(g).all()
    monkeypatch.undo()
    sub = q0[:2000]
    np.testing.assert_allclose(T.variance_map(net, sub), _row_maps_by_hand(net, sub)[0].mean(1),
                               rtol=1e-12)


def test_data_set_theory_bad_lengths():
    net = mlp(5, 2, activation="tanh")
    with pytest.raises(ValueError, match="1-D array"):
        T.variance_map(net, np.ones((2, 2)))
    with pytest.raises(ValueError, match="1-D array"):
        T.variance_map(net, [1.0, -1.0])
    with pytest.raises(ValueError, match="counts"):
        T.variance_map(net, [1.0, 2.0], counts=[1])


def test_simulated_data_set_matches_the_row_averaged_theory():
    # Rows of lengths 0.02 and 8: tanh is nearly linear for the first and saturated for the
    # second, so the map of the mean length (4.01) is off by ~60% from layer 2 on. At width
    # 1000 the finite-width bias (order 1/n per layer) is below the SE of 4000 trials.
    x = np.zeros((2, 1000))
    x[0], x[1] = np.sqrt(0.02), np.sqrt(8.0)
    net = mlp(1000, 4, activation="tanh", init="xavier", bias_std=0.1)
    res = fastvar.simulate(net, 4000, seed=5, inputs=x, engine="exact")
    assert res.input_q0 == pytest.approx(4.01)
    values, counts = res.input_q0_rows
    np.testing.assert_allclose(values, [0.02, 8.0], rtol=1e-15)
    np.testing.assert_array_equal(counts, [1, 1])
    _assert_within_5_se(res, "qg")
    off = np.abs(res.q_mean - T.variance_map(net, res.input_q0)) / res.q_mean_se
    assert np.all(off[1:] > 20)  # layer 1 is affine in q0: the same there
    # the Result rebuilds its theory from its own metadata
    again = fastvar.Result.from_dict(json.loads(res.to_json()))
    np.testing.assert_array_equal(again.q_theory, res.q_theory)
    np.testing.assert_array_equal(again.g_theory, res.g_theory)
    np.testing.assert_array_equal(again.input_q0_rows[0], values)


@pytest.mark.parametrize("activation", ["tanh", "erf", "sigmoid"])
@pytest.mark.parametrize("sigma_w2", [1e16, 1e50, 1e100])
def test_bounded_activations_always_have_a_fixed_point(activation, sigma_w2):
    # |phi| <= 1 keeps the map below sigma_w2 + sigma_b2: the search used to stop at 1e15
    # and say "no fixed point" (tanh at sigma_w2 = 1e50)
    q_star, chi = T.fixed_point(activation, sigma_w2, 0.1)
    mapped = sigma_w2 * T.gaussian_moments(activation, q_star)[1] + 0.1
    assert 0.2 * sigma_w2 < q_star <= (sigma_w2 + 0.1) * (1 + 1e-12)  # E[phi^2] <= 1
    assert mapped == pytest.approx(q_star, rel=1e-9)
    assert np.isfinite(chi) and chi > 0


@pytest.mark.parametrize("activation, slope2", [("relu", 0.0), ("tanh", 1.0), ("gelu", 0.25)])
def test_an_all_zero_input_gets_the_gradient_theory_of_phi_prime_at_zero(activation, slope2):
    # z is exactly 0 in every network, so the gradient gains sigma_w2 phi'(0)^2 per layer:
    # ReLU's g_theory said 1 (the limit q -> 0+) where every engine measures exactly 0
    net = mlp(4, 3, activation=activation)
    res = fastvar.simulate(net, 100, inputs=np.zeros(4), engine="exact")
    expected = [(2.0 * slope2) ** 2, 2.0 * slope2, 1.0]
    np.testing.assert_allclose(res.g_theory, expected, rtol=1e-12)
    if slope2 == 0.0:
        assert (res.g_mean[:-1] == 0.0).all()
