"""Order and chaos by measurement: input pairs, the cosine c^l, dead networks, lengths of a."""
import json
import math

import numpy as np
import pytest

import fastvar
from fastvar import theory

ENGINES = ("numpy", "direct", "exact")
SB2 = 0.05  # sigma_b^2 of the tanh phase tests (Schoenholz et al. 2017 use the same scale)


def _phases():
    crit = theory.critical_sigma_w2("tanh", SB2)
    return {"ordered": crit / 2, "critical": crit, "chaotic": 2.5 * crit}


@pytest.mark.parametrize("phase", ["ordered", "critical", "chaotic"])
def test_c_follows_the_correlation_map_at_width_1000(phase):
    width, depth, c0 = 1000, 10, 0.6
    net = fastvar.mlp(width, depth, activation="tanh", init=_phases()[phase],
                      bias_std=math.sqrt(SB2))
    res = fastvar.simulate(net, 4000, seed=1, correlation=c0)
    np.testing.assert_array_equal(res.c_theory, theory.correlation_map(net, c0))
    # The per-network cosine is a ratio: at width n a sample correlation is biased by
    # -c (1 - c^2) / (2 n) per layer; with map slopes <= 1 the bias at layer l is at most
    # l * max |c (1 - c^2)| / (2 n) over the layers so far.
    c = res.c_theory
    allowance = np.cumsum(np.abs(c * (1 - c * c))) / (2 * width)
    gap = np.abs(res.c_mean - res.c_theory)
    assert (gap <= 5 * res.c_mean_se + allowance).all(), (gap, res.c_mean_se, allowance)
    assert res.complete.all() and (res.c_undefined == 0).all()


def test_measured_gradient_gain_matches_chi():
    net = fastvar.mlp(1000, 6, activation="tanh", init=_phases()["chaotic"],
                      bias_std=math.sqrt(SB2))
    rates = fastvar.simulate(net, 2000, seed=2, correlation=0.6).slopes()
    chi, se, want = rates["chi_g"][:-1], rates["chi_g_se"][:-1], rates["chi_g_theory"][:-1]
    # E[g^l] / E[g^{l+1}] carries the O(1/n) finite-width corrections of both means
    assert (np.abs(chi - want) <= 5 * se + 5 / 1000).all(), (chi, se, want)
    assert np.isnan(rates["chi_g"][-1]) and (se > 0).all()
    c_star, chi_c = theory.correlation_fixed_point("tanh", _phases()["chaotic"], SB2)
    assert np.isfinite(rates["chi_c"]).all() and (rates["chi_c_se"] > 0).all()
    # the theory's ratio of distances to c* tends to the slope of the map there
    # (at depth 60, |c - c*| ~ chi_c^60 ~ 1e-4: the map is linear there to that order)
    long = fastvar.Network([10] * 60, activation="tanh", init=_phases()["chaotic"],
                           bias_std=math.sqrt(SB2))
    c = theory.correlation_map(long, 0.6)
    assert (c[-1] - c_star) / (c[-2] - c_star) == pytest.approx(chi_c, rel=1e-3)


@pytest.mark.parametrize("net, c0", [
    (fastvar.Network([3, 3, 3, 3, 3], activation="relu", init="he"), 0.3),
    (fastvar.Network([5, 4, 6, 2], activation="tanh", init="xavier", bias_std=0.3), -0.4),
])
def test_engines_agree_on_c_dead_and_m_at_tiny_widths(net, c0):
    runs = {e: fastvar.simulate(net, 12_000, seed=5, engine=e, correlation=c0) for e in ENGINES}
    ref = runs["numpy"]
    for engine in ("direct", "exact"):
        res = runs[engine]
        for col in ("c_mean", "dead_frac", "m_mean"):
            se = np.hypot(ref[col + "_se"], res[col + "_se"])
            gap = np.abs(ref[col] - res[col])
            ok = (gap <= 5 * se) | ((gap == 0) & (se == 0))
            assert ok.all(), (engine, col, ref[col], res[col], se)


def test_dead_networks_follow_the_law_at_width_n():
    # ReLU without bias: a layer is dead when all n units are negative (2^-n), and a dead
    # layer kills every later one, so P(dead by layer d) = 1 - (1 - 2^-n)^d
    n, depth = 3, 8
    res = fastvar.simulate(fastvar.mlp(n, depth, activation="relu", init="he"), 40_000, seed=7)
    want = 1 - (1 - 2.0 ** -n) ** np.arange(1, depth + 1)
    assert (np.abs(res.dead_frac - want) <= 5 * res.dead_frac_se).all(), (res.dead_frac, want)
    assert np.isnan(res.c_mean).all() and np.isnan(res.c_theory).all()  # no pairs asked


def test_dead_layers_leave_the_cosine_undefined_not_zero():
    res = fastvar.simulate(fastvar.mlp(2, 6, activation="relu", init="he"), 4000, seed=3,
                           correlation=0.5)
    assert res.c_undefined[-1] > 0 and np.isfinite(res.c_mean).all()
    assert res.complete.all()  # undefined is not overflow


def test_m_is_half_of_q_for_relu():
    # E[relu(z)^2] = E[z^2] / 2 unit by unit, so E[M^l] = E[q^l] / 2 at any width
    res = fastvar.simulate(fastvar.mlp(50, 5, activation="relu", init="he"), 20_000, seed=4)
    se = np.hypot(res.m_mean_se, res.q_mean_se / 2)
    assert (np.abs(res.m_mean - res.q_mean / 2) <= 5 * se).all()
    assert (res.m_var > 0).all()


@pytest.mark.parametrize("engine", ["direct", "exact"])
def test_pairs_are_bitwise_reproducible_across_threads(engine):
    import numba

    net = fastvar.Network([6, 9, 7, 5], activation="gelu", init="xavier", bias_std=0.2)
    runs = [fastvar.simulate(net, 600, seed=11, engine=engine, correlation=0.25, threads=t).stats
            for t in sorted({1, numba.config.NUMBA_NUM_THREADS})]
    for other in runs[1:]:
        np.testing.assert_array_equal(runs[0], other)


def test_rows_pairs_two_distinct_rows_and_report_their_mean_cosine():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((5, 8)) + np.linspace(0, 2, 8)
    unit = data / np.linalg.norm(data, axis=1, keepdims=True)
    cos = unit @ unit.T
    want = (cos.sum() - 5) / 20  # mean over ordered pairs of distinct rows
    net = fastvar.Network([8, 30, 30], activation="tanh", init="lecun")
    for engine in ENGINES:
        res = fastvar.simulate(net, 400, seed=1, engine=engine, inputs=data, correlation="rows")
        assert res.input_correlation == pytest.approx(want, rel=1e-12)
        assert res.inputs_per_network == 2 and np.isfinite(res.c_mean).all()
    # two identical rows would give c = 1 everywhere: distinct rows never do here
    assert (res.c_mean < 1 - 1e-9).all()


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(correlation=0.5, inputs_per_network=3), ValueError, "inputs_per_network"),
    (dict(correlation=0.5, inputs_per_network=1), ValueError, "inputs_per_network"),
    (dict(correlation=1.5), ValueError, r"\[-1, 1\]"),
    (dict(correlation=float("nan")), ValueError, "finite"),
    (dict(correlation=True), TypeError, "real number"),
    (dict(correlation="cols"), ValueError, "'rows'"),
    (dict(correlation="rows"), ValueError, "data set"),
    (dict(correlation=0.5, inputs=np.ones((3, 4))), ValueError, "correlation='rows'"),
    (dict(correlation="rows", inputs=np.ones(4)), ValueError, "at least 2 rows"),
    (dict(correlation="rows", inputs=np.vstack([np.ones(4), np.zeros(4)])), ValueError,
     "row 1 is all zeros"),
])
def test_invalid_pairs_are_refused_before_work(kwargs, error, match):
    with pytest.raises(error, match=match):
        fastvar.simulate(fastvar.mlp(4, 2), 10, **kwargs)


def test_odd_trials_with_pairs_are_refused():
    with pytest.raises(ValueError, match="even"):
        fastvar.simulate(fastvar.mlp(4, 2), 11, correlation=0.2)


def test_pairs_survive_json_and_show_in_the_table(tmp_path):
    res = fastvar.simulate(fastvar.mlp(20, 3, activation="tanh"), 200, correlation=-0.3)
    back = fastvar.Result.from_dict(json.loads(res.to_json()))
    assert back.input_correlation == -0.3
    np.testing.assert_array_equal(back.c_mean, res.c_mean)
    np.testing.assert_array_equal(back.c_theory, res.c_theory)
    assert "c_mean" in res.table() and "c_theory" in res.table()
    res.to_csv(tmp_path / "r.csv")
    assert "c_mean" in (tmp_path / "r.csv").read_text().splitlines()[0]


def test_cli_correlation(capsys):
    from fastvar.cli import main

    assert main(["--width", "20", "--depth", "3", "--trials", "40", "--correlation", "0.5",
                 "--quiet"]) == 0
    assert "c_theory" in capsys.readouterr().out
    assert main(["--width", "20", "--depth", "3", "--trials", "41", "--correlation", "0.5",
                 "--quiet"]) == 2
    assert "even" in capsys.readouterr().err


def test_relu_correlation_map_is_the_arc_cosine_kernel():
    net = fastvar.mlp(10, 6, activation="relu", init="he")
    c = theory.correlation_map(net, 0.2)
    assert c[0] == pytest.approx(0.2, abs=1e-14)  # the input is not passed through phi
    for prev, nxt in zip(c[:-1], c[1:]):
        want = (math.sqrt(1 - prev ** 2) + (math.pi - math.acos(prev)) * prev) / math.pi
        assert nxt == pytest.approx(want, abs=1e-12)


def test_linear_networks_keep_c_and_fixed_points_have_closed_forms():
    net = fastvar.mlp(10, 5, activation="linear", init=0.7)
    np.testing.assert_allclose(theory.correlation_map(net, -0.35), -0.35, atol=1e-14)
    # linear with a bias: c* = 1 and the map c -> (s c q* + b) / q* has slope s = sigma_w2
    assert theory.correlation_fixed_point("linear", 0.5, 0.1) == pytest.approx((1.0, 0.5))
    # ReLU without bias: the arc-cosine map has slope 1 at c* = 1, whatever sigma_w2
    assert theory.correlation_fixed_point("relu", 1.5, 0.0) == (1.0, 1.0)
    assert theory.correlation_fixed_point("relu", 2.0, 0.0) == pytest.approx((1.0, 1.0))
    # chaotic tanh: c* < 1 is a fixed point of the map and attracts (chi_c < 1)
    sw2 = _phases()["chaotic"]
    c_star, chi_c = theory.correlation_fixed_point("tanh", sw2, SB2)
    assert 0 < c_star < 1 and 0 < chi_c < 1
    assert theory.depth_scales("tanh", sw2, SB2)[1] == pytest.approx(-1 / math.log(chi_c))
    c = theory.correlation_map(fastvar.Network([10] * 300, activation="tanh", init=sw2,
                                               bias_std=math.sqrt(SB2)), 0.9)
    assert c[-1] == pytest.approx(c_star, abs=1e-9)
