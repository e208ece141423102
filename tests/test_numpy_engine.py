"""The NumPy reference engine against exact results (it is the spec for the others)."""
import math

import numpy as np
import pytest

import fastvar
from fastvar import Moments, Network, mlp
from fastvar.engines.base import Plan
from fastvar.engines.numpy_engine import draw_weights

from .helpers import assert_within_se


@pytest.mark.parametrize("s", [0.5, 1.0, 1.7])
def test_linear_network_q_grows_as_s_to_the_l(s):
    net = Network([6, 5, 7, 4, 6], activation="linear", init=s)
    res = fastvar.simulate(net, 20_000, seed=11, engine="numpy")
    truth = s ** res.layer
    assert_within_se(res.q_mean, truth, res.q_mean_se)
    assert_within_se(res.z_var, truth, res.z_var_se)


def test_relu_he_keeps_q_at_two():
    res = fastvar.simulate(mlp(12, 6, activation="relu", init="he"), 20_000, seed=5, engine="numpy")
    assert_within_se(res.q_mean, 2.0, res.q_mean_se)
    # the relative spread of q grows with depth (finite width), so SEs grow too
    assert res.q_var[-1] > res.q_var[0] and res.q_mean_se[-1] > res.q_mean_se[0]


def test_classroom_one_layer_products_and_sum():
    # width 10, He, linear: each product w_ij x_j has variance 2/n and excess kurtosis 6
    # (a product of two Gaussians), yet their sum z has variance 2.
    n, trials = 10, 100_000
    net = Network([n, n], activation="linear", init="he")
    plan = Plan(net, trials, 0, 0, np.zeros((0, n)), 1, False)
    rng = np.random.default_rng(7)
    w = draw_weights(rng, plan, 1, trials)[:, 0, :]  # row 0 of each network: independent terms
    x = rng.standard_normal((trials, n))
    products = Moments().update(w * x)
    assert products.var() == pytest.approx(2 / n, abs=5 * math.sqrt(8 / products.count) * 2 / n)
    assert products.kurtosis() == pytest.approx(
        6.0, abs=5 * math.sqrt((11025 - 81) / products.count))
    res = fastvar.simulate(net, trials, seed=3, engine="numpy")
    assert_within_se(res.z_var, 2.0, res.z_var_se)


@pytest.mark.parametrize("distribution, kurtosis", [("normal", 0.0), ("uniform", -1.2),
                                                     ("truncated_normal", None)])
def test_weight_laws_have_the_exact_variance(distribution, kurtosis):
    net = Network([50, 40], init="lecun", distribution=distribution)
    plan = Plan(net, 1, 0, 0, np.zeros((0, 50)), 1, False)
    w = draw_weights(np.random.default_rng(1), plan, 1, 100).ravel() * np.sqrt(50)
    m = Moments().update(w)
    assert m.var() == pytest.approx(1.0, abs=5 * math.sqrt((m.kurtosis() + 2) / m.count))
    if kurtosis is not None:
        assert m.kurtosis() == pytest.approx(kurtosis, abs=5 * math.sqrt(24 / m.count))
    else:
        assert np.abs(w).max() <= 2.0 / 0.87962566103423978 + 1e-12


@pytest.mark.parametrize("widths", [[6, 3], [3, 6]])
def test_orthogonal_weights_are_scaled_isometries(widths):
    net = Network(widths, init="orthogonal", gain=1.5)
    plan = Plan(net, 1, 0, 0, np.zeros((0, widths[0])), 1, False)
    w = draw_weights(np.random.default_rng(2), plan, 1, 4)
    small = min(widths)
    gram = w @ w.transpose(0, 2, 1) if widths[1] <= widths[0] else w.transpose(0, 2, 1) @ w
    np.testing.assert_allclose(gram, np.broadcast_to(2.25 * np.eye(small), gram.shape), atol=1e-12)


def test_same_seed_same_result_other_seed_differs():
    net = mlp(8, 3, activation="tanh", init="xavier", bias_std=0.1)
    a = fastvar.simulate(net, 3000, seed=4, engine="numpy")
    b = fastvar.simulate(net, 3000, seed=4, engine="numpy")
    c = fastvar.simulate(net, 3000, seed=5, engine="numpy")
    np.testing.assert_array_equal(a.stats, b.stats)
    assert not np.array_equal(a.stats, c.stats)


def test_fixed_input_and_data_set_inputs():
    net = Network([4, 30, 30], activation="relu", init="he")
    x = np.array([1.0, -2.0, 0.5, 3.0])
    res = fastvar.simulate(net, 20_000, seed=1, engine="numpy", inputs=x)
    q0 = np.mean(x * x)
    assert res.input_q0 == pytest.approx(q0)
    assert_within_se(res.q_mean, 2 * q0, res.q_mean_se)  # ReLU + He preserves E[q] for any input
    data = np.random.default_rng(0).normal(size=(50, 4)) * 3
    res = fastvar.simulate(net, 20_000, seed=1, engine="numpy", inputs=data, inputs_per_network=4)
    assert_within_se(res.q_mean, 2 * np.mean(data * data), 1.0 * res.q_mean_se)


def test_standard_errors_cover_the_truth():
    # honest SEs: over many independent runs the truth lies within +-2 SE about 95% of the time.
    net = Network([4, 4, 4, 4], activation="linear", init=1.0)
    hits, total = 0, 0
    for seed in range(300):
        res = fastvar.simulate(net, 200, seed=seed, engine="numpy", gradients=False)
        for value, se in ((res.q_mean, res.q_mean_se), (res.z_var, res.z_var_se)):
            hits += int(np.sum(np.abs(value - 1.0) <= 2 * se))
            total += value.size
    coverage = hits / total
    assert 0.90 <= coverage <= 0.98, coverage


def test_naive_pooled_se_would_be_far_too_small():
    # units within a trial share ||a||: std/sqrt(units*trials) underestimates the error.
    res = fastvar.simulate(mlp(64, 8, activation="relu", init="he"), 2000, seed=2, engine="numpy",
                           gradients=False)
    naive = np.sqrt(res.z_var * (res.z_kurt + 2) / (64 * res.trials))
    assert res.z_var_se[-1] > 2 * naive[-1]
