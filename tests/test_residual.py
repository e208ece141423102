"""Residual streams and normalization layers: exact identities, engines in law, theory."""
import subprocess
import sys

import numpy as np
import pytest

import fastvar
from fastvar import theory

ENGINES = ("numpy", "direct", "exact")


def test_closed_forms_of_the_maps():
    alpha, sw2, sb2, depth = 0.7, 1.5, 0.25, 6
    # linear with RMSNorm: every branch sees N(h) with ||N(h)||^2 = n exactly
    net = fastvar.mlp(9, depth, activation="linear", init=sw2, bias_std=sb2 ** 0.5,
                      residual=alpha, norm="rms")
    want = sw2 + sb2 + np.arange(depth) * alpha ** 2 * (sw2 + sb2)
    np.testing.assert_allclose(theory.variance_map(net), want, rtol=1e-12)
    # linear without norm or bias: E q^l = (1 + alpha^2 sigma_w^2) E q^{l-1}
    net = fastvar.mlp(9, depth, activation="linear", init=sw2, residual=alpha)
    np.testing.assert_allclose(theory.variance_map(net),
                               sw2 * (1 + alpha ** 2 * sw2) ** np.arange(depth), rtol=1e-12)
    # ... and its gradients: E g^{l-1} = (1 + alpha^2 sigma_w^2) E g^l
    np.testing.assert_allclose(theory.gradient_map(net),
                               (1 + alpha ** 2 * sw2) ** np.arange(depth - 1, -1, -1), rtol=1e-12)
    # ReLU, He, alpha = 1: the stream's q doubles at every block
    net = fastvar.mlp(9, depth, activation="relu", init="he", residual=1.0)
    np.testing.assert_allclose(theory.variance_map(net), 2.0 ** np.arange(1, depth + 1),
                               rtol=1e-12)
    # pre-LN ReLU: the branch adds alpha^2 sigma_w^2 / 2 whatever the stream's size
    net = fastvar.mlp(9, depth, activation="relu", init="he", residual="1/sqrt(L)",
                      norm="layer")
    np.testing.assert_allclose(np.diff(theory.variance_map(net)), 1.0 / depth, rtol=1e-12)
    # a norm without a residual stream fixes q from layer 2 on
    net = fastvar.mlp(9, depth, activation="relu", init="he", norm="rms")
    np.testing.assert_allclose(theory.variance_map(net)[1:], 1.0, rtol=1e-12)
    # linear and residual keep c: both branches and the stream have the same correlation
    net = fastvar.mlp(9, depth, activation="linear", init=1.0, residual=0.5, norm="rms")
    np.testing.assert_allclose(theory.correlation_map(net, 0.3), 0.3, atol=1e-12)


@pytest.mark.parametrize("engine", ENGINES)
def test_linear_rms_identity_holds_at_width_3(engine):
    alpha, sw2, sb2 = 0.7, 1.5, 0.25
    net = fastvar.mlp(3, 5, activation="linear", init=sw2, bias_std=sb2 ** 0.5, residual=alpha,
                      norm="rms")
    res = fastvar.simulate(net, 20_000, seed=3, engine=engine)
    # exact at any width: E q^l = q^1 + (l - 1) alpha^2 (sigma_w^2 + sigma_b^2)
    assert (np.abs(res.q_mean - res.q_theory) <= 5 * res.q_mean_se).all(), res.q_mean


@pytest.mark.parametrize("engine", ENGINES)
def test_linear_residual_identity_holds_at_width_3(engine):
    net = fastvar.mlp(3, 4, activation="linear", init=1.5, residual=0.7)
    res = fastvar.simulate(net, 20_000, seed=4, engine=engine)
    assert (np.abs(res.q_mean - res.q_theory) <= 5 * res.q_mean_se).all(), res.q_mean
    assert (np.abs(res.g_mean - res.g_theory) <= 5 * res.g_mean_se).all(), res.g_mean


@pytest.mark.parametrize("net", [
    fastvar.mlp(4, 4, input_width=3, activation="tanh", init=1.5, bias_std=0.3, residual=0.5,
                norm="layer"),
    fastvar.mlp(5, 3, activation="tanh", init=2.0, norm="layer", norm_eps=0.1),
    fastvar.mlp(2, 4, activation="relu", init="he", residual=1.0, norm="rms"),
])
def test_engines_agree_in_law_at_tiny_widths(net):
    runs = {e: fastvar.simulate(net, 12_000, seed=9, engine=e, correlation=0.4) for e in ENGINES}
    ref = runs["numpy"]
    for engine in ("direct", "exact"):
        res = runs[engine]
        for col in ("q_mean", "g_mean", "c_mean", "m_mean"):
            se = np.hypot(ref[col + "_se"], res[col + "_se"])
            assert (np.abs(ref[col] - res[col]) <= 5 * se).all(), (engine, col, ref[col], res[col])


@pytest.mark.parametrize("kwargs", [
    dict(activation="relu", init="he", residual="1/sqrt(L)"),
    dict(activation="relu", init="he", residual="1/sqrt(L)", norm="layer"),
    dict(activation="tanh", init=1.5, bias_std=0.3, residual=0.5, norm="rms"),
    dict(activation="tanh", init=2.0, bias_std=0.2, norm="layer"),
])
def test_theory_at_width_1000(kwargs):
    width, depth = 1000, 6
    net = fastvar.mlp(width, depth, **kwargs)
    res = fastvar.simulate(net, 2000, seed=5, correlation=0.5)
    # finite width moves each layer by O(1/n): the norm's Jacobian projects out up to 2 of n
    # directions (relative 2/n) and E[1/r^2] exceeds 1/E[r^2] by about Var(r^2)/r^4 = 2/n;
    # over l layers at most 4 l / n relative
    allow = 4 * np.arange(1, depth + 1) / width
    for col in ("q", "g"):
        gap = np.abs(res[col + "_mean"] - res[col + "_theory"])
        ok = gap <= 5 * res[col + "_mean_se"] + allow * np.abs(res[col + "_theory"])
        assert ok.all(), (col, res[col + "_mean"], res[col + "_theory"], res[col + "_mean_se"])
    gap = np.abs(res.c_mean - res.c_theory)
    assert (gap <= 5 * res.c_mean_se + allow).all(), (res.c_mean, res.c_theory)


@pytest.mark.parametrize("kwargs, match", [
    (dict(widths=[4, 8, 6], residual=1.0), "equal hidden widths"),
    (dict(widths=[4, 4], residual=0.0), "> 0"),
    (dict(widths=[4, 4], residual=float("nan")), "finite"),
    (dict(widths=[4, 4], residual="1/log(L)"), "unknown residual scaling"),
    (dict(widths=[4, 4], norm="batch"), "unknown norm"),
    (dict(widths=[4, 4], norm_eps=1e-5), "norm_eps applies"),
    (dict(widths=[4, 4], norm="rms", norm_eps=-1.0), "norm_eps"),
])
def test_bad_residual_and_norm_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fastvar.Network(**kwargs)


def test_named_scalings_and_round_trip():
    net = fastvar.mlp(8, 16, residual="1/sqrt(L)", norm="layer", norm_eps=1e-5)
    assert net.alpha == 0.25 and fastvar.mlp(8, 16, residual="1/L").alpha == 1 / 16
    assert fastvar.Network(**net.to_dict()) == net
    res = fastvar.simulate(fastvar.mlp(8, 3, residual=0.5, norm="rms"), 100)
    back = fastvar.Result.from_dict(res.to_dict())
    assert back.network == res.network and np.array_equal(back.q_theory, res.q_theory)
    assert "residual alpha 0.5" in repr(res) and "rms norm" in repr(res)


@pytest.mark.parametrize("engine", ["direct", "exact"])
def test_bitwise_reproducible_across_threads(engine):
    import numba

    net = fastvar.mlp(6, 4, activation="gelu", init="xavier", bias_std=0.2, residual=0.5,
                      norm="layer")
    runs = [fastvar.simulate(net, 300, seed=12, engine=engine, threads=t).stats
            for t in sorted({1, numba.config.NUMBA_NUM_THREADS})]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)


def test_dead_layer_under_a_norm_stays_zero_not_nan():
    # width 1, ReLU, no bias: a negative unit kills the layer; N(0) is 0, not 0 / 0
    res = fastvar.simulate(fastvar.mlp(1, 4, activation="relu", init="he", norm="rms"), 2000)
    assert res.complete.all() and (res.dead_frac > 0).all()


def test_cli_residual_and_norm():
    done = subprocess.run([sys.executable, "-m", "fastvar", "--width", "16", "--depth", "3",
                           "--trials", "50", "--residual", "1/sqrt(L)", "--norm", "layer",
                           "--quiet"], capture_output=True, text=True, timeout=300)
    header = " ".join(done.stdout.split())  # the header wraps at 100 columns
    assert done.returncode == 0 and "residual alpha 1/sqrt(L), layer norm" in header
    done = subprocess.run([sys.executable, "-m", "fastvar", "--widths", "8,4,6", "--residual",
                           "1", "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and "equal hidden widths" in done.stderr
