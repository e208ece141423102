"""simulate(jacobian=True): the spectrum of the input-output Jacobian (issue 24).

Finite-width allowance: the per-network spread m2 / m1^2 - 1 sits above its
infinite-width value by a bias that grows with depth and shrinks like 1/n. Measured
(docs/jacobian.md) for linear, ReLU and critical tanh, Gaussian and orthogonal, at widths
32-400, it stays below spread_theory * (l + 1) / (2 n) at layer l: the tests allow that
plus 5 SE, at two widths, so a bias that did not shrink with the width would fail.
"""
import json
import re

import numba
import numpy as np
import pytest

import fastvar
from fastvar.api import estimate, plan
from fastvar.cli import main
from fastvar.kernels.jacobian import gram_statistics
from fastvar.theory import jacobian_maps

from .helpers import K

SW2, SB2 = 1.68798, 0.03804  # critical tanh with q* = 0.5


def allowance(theory, width):
    layers = np.arange(1, len(theory) + 1)
    return theory * (layers + 1) / (2.0 * width)


def assert_spread(res, width, what):
    gap = res.jac_spread - res.jac_spread_theory
    limit = K * res.jac_spread_se + allowance(res.jac_spread_theory, width)
    assert np.all(np.abs(gap) <= limit), f"{what}: gap {gap} over {limit}"


@pytest.mark.parametrize("p, rank", [(1, 1), (2, 2), (7, 7), (40, 40), (30, 3), (12, 0)])
def test_gram_statistics_match_lapack(p, rank):
    rng = np.random.default_rng(p + rank)
    a = rng.standard_normal((p, max(rank, 1))) * (rank > 0)
    g = a @ a.T
    if p == 40:  # a Wishart edge: the top eigenvalues crowd together
        g = a @ a.T / p
    want = np.linalg.eigvalsh(g)
    scratch = np.zeros((4, p))
    m1, m2, top = gram_statistics(g.copy(), p, *scratch)
    scale = max(want[-1], 1e-300)
    assert abs(m1 - want.mean()) <= 1e-13 * scale
    assert abs(m2 - np.mean(want ** 2)) <= 1e-12 * scale ** 2
    assert abs(top - want[-1]) <= 1e-13 * p * scale


def test_theory_known_values():
    for act, init, kw, spread in [("linear", 1.0, {}, 1.0), ("linear", "orthogonal", {}, 0.0),
                                  ("relu", 2.0, {}, 2.0),
                                  ("relu", "orthogonal", {"gain": 2 ** 0.5}, 1.0)]:
        m1, s = jacobian_maps(fastvar.mlp(50, 6, activation=act, init=init, **kw))
        np.testing.assert_allclose(m1, 1.0, rtol=1e-12)
        np.testing.assert_allclose(s, spread * np.arange(1, 7), atol=1e-12)
    q0 = (0.5 - SB2) / SW2  # q^1 = q* = 0.5
    for init, kw, want in [("orthogonal", {"gain": SW2 ** 0.5}, 5.985), (SW2, {}, 25.98)]:
        net = fastvar.mlp(100, 20, activation="tanh", init=init, bias_std=SB2 ** 0.5, **kw)
        m1, s = jacobian_maps(net, q0=q0)
        assert abs(s[-1] - want) < 0.006 and abs(m1[-1] - 1.0) < 1e-3
    assert np.isnan(jacobian_maps(fastvar.mlp(16, 2, input_width=8))[1]).all()


@pytest.mark.parametrize("engine", ["numpy", "direct"])
def test_linear_orthogonal_is_an_isometry_at_any_width(engine):
    gain = 1.3
    net = fastvar.mlp(12, 4, activation="linear", init="orthogonal", gain=gain)
    res = fastvar.simulate(net, 20, engine=engine, jacobian=True, seed=3)
    layers = np.arange(1, 5)
    assert np.all(np.abs(res.jac_spread) <= 1e-10)
    np.testing.assert_allclose(res.jac_m1, gain ** (2 * layers), rtol=1e-12)
    np.testing.assert_allclose(res.jac_max, gain ** layers, rtol=1e-12)
    np.testing.assert_allclose(res.jac_spread_theory, 0.0, atol=1e-12)
    # exactly 0 (the quadrature's -2e-16 read as a departure), and a measurement equal to
    # its theory up to rounding is 0 SE from it (an SE of 1e-18 made it -73 SE)
    assert np.all(res.jac_spread_theory == 0.0)
    gaps = [float(g) for g in re.findall(r"\(([+-][0-9.e+-]+)\)", str(res))]
    assert gaps and max(map(abs, gaps)) < 5, gaps


@pytest.mark.parametrize("act, init, kw", [("linear", 1.0, {}), ("relu", 2.0, {}),
                                           ("relu", "orthogonal", {"gain": 2 ** 0.5})])
def test_linear_and_relu_closed_forms(act, init, kw):
    for width in (32, 80):
        net = fastvar.mlp(width, 4, activation=act, init=init, **kw)
        res = fastvar.simulate(net, 300, jacobian=True, gradients=False, seed=11)
        assert res.engine == "direct"
        assert_spread(res, width, f"{act} {init} n={width}")
        np.testing.assert_allclose(res.jac_m1_theory, 1.0, rtol=1e-12)
        assert np.all(np.abs(res.jac_m1 - 1.0) <= K * res.jac_m1_se)


@pytest.mark.parametrize("init, kw", [("orthogonal", {"gain": SW2 ** 0.5}), (SW2, {})])
def test_critical_tanh_from_its_fixed_point(init, kw):
    # depth 5 from q* = 0.5: the spread grows linearly, slope 0.299 (orthogonal), 1.299
    for width, trials in ((100, 120), (160, 30)):
        net = fastvar.mlp(width, 5, activation="tanh", init=init, bias_std=SB2 ** 0.5, **kw)
        x = np.full(width, ((0.5 - SB2) / SW2) ** 0.5)
        res = fastvar.simulate(net, trials, inputs=x, jacobian=True, gradients=False, seed=2)
        assert_spread(res, width, f"tanh {init} n={width}")
        assert np.all(np.abs(res.jac_m1 - res.jac_m1_theory) <= K * res.jac_m1_se)


@pytest.mark.parametrize("widths, init, kw", [
    ([20] * 4, "xavier", {"distribution": "uniform", "bias_std": 0.3}),
    ([16, 24, 10, 20], "orthogonal", {"gain": 1.2}),  # J^T J, then J J^T, then J^T J
])
def test_numpy_and_direct_engines_agree_in_law(widths, init, kw):
    net = fastvar.Network(widths, activation="tanh", init=init, **kw)
    opts = dict(jacobian=True, inputs_per_network=2, seed=4)
    a = fastvar.simulate(net, 600, engine="numpy", **opts)
    b = fastvar.simulate(net, 600, engine="direct", **opts)
    for name in ("jac_m1", "jac_spread", "jac_max"):
        se = np.hypot(a[name + "_se"], b[name + "_se"])
        assert np.all(np.abs(a[name] - b[name]) <= K * se), name


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("init, kw", [("orthogonal", {}), ("he", {"distribution":
                                                                 "truncated_normal"})])
def test_bitwise_the_same_on_one_or_two_threads(init, kw):
    net = fastvar.Network([10, 14, 9, 12], activation="relu", init=init, **kw)
    one = fastvar.simulate(net, 40, jacobian=True, seed=9, threads=1)
    two = fastvar.simulate(net, 40, jacobian=True, seed=9, threads=2)
    assert one.engine == "direct"
    np.testing.assert_array_equal(one.jacobian_stats, two.jacobian_stats)
    np.testing.assert_array_equal(one.stats, two.stats)


def test_round_trip_and_resume(tmp_path):
    net = fastvar.mlp(10, 3, activation="tanh")
    res = fastvar.simulate(net, 64, jacobian=True, seed=1, checkpoint=tmp_path / "ck")
    again = fastvar.simulate(net, 64, jacobian=True, seed=1, checkpoint=tmp_path / "ck")
    np.testing.assert_array_equal(again.jacobian_stats, res.jacobian_stats)
    res.to_json(tmp_path / "r.json")
    back = fastvar.load(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["format"] == "fastvar.result/4"
    for name in ("jac_m1", "jac_spread_se", "jac_max", "jac_spread_theory", "jac_heavy_tails"):
        np.testing.assert_array_equal(back[name], res[name])
    edited = res.to_dict()
    edited["jacobian"][1][0] += 1  # one network more at layer 2 than the run drew
    with pytest.raises(ValueError, match="jacobian holds 65 networks at layer 2"):
        fastvar.Result.from_dict(edited)
    plain = fastvar.simulate(net, 64, seed=1)
    assert "jacobian" not in plain.to_dict() and "jac_m1" not in plain.columns
    with pytest.raises(ValueError, match="another request"):
        fastvar.simulate(net, 64, seed=1, checkpoint=tmp_path / "ck")


def test_refusals_and_the_cost_model():
    net = fastvar.mlp(16, 3)
    with pytest.raises(ValueError, match="engine 'exact' cannot run this: jacobian"):
        plan(net, 10, engine="exact", jacobian=True)
    with pytest.raises(ValueError, match="correlation"):
        plan(net, 10, jacobian=True, correlation=0.5)
    with pytest.raises(ValueError, match="residual"):
        plan(fastvar.mlp(16, 3, residual=0.5), 10, jacobian=True)
    assert plan(net, 10, jacobian=True)[1].name == "direct"
    small = estimate(fastvar.mlp(128, 10), 100, jacobian=True, threads=1).seconds
    big = estimate(fastvar.mlp(256, 10), 100, jacobian=True, threads=1).seconds
    assert 6 < big / small < 9  # O(n^3)
    with pytest.raises(ValueError, match="one network of this size") as refused:
        plan(fastvar.mlp(4096, 200), 1, jacobian=True)
    assert "exact" not in str(refused.value)  # it cannot run the Jacobian: never advised


def test_command_line(capsys):
    assert main(["simulate", "--width", "8", "--depth", "3", "--trials", "40",
                 "--jacobian"]) == 0
    out = capsys.readouterr().out
    assert "jac_spread_theory" in out and "q_theory" not in out
    assert max(len(line) for line in out.splitlines()) <= 100


@pytest.mark.parametrize("engine", ["numpy", "direct"])
def test_with_histograms_the_numbers_are_unchanged(engine):
    net = fastvar.mlp(10, 3, activation="tanh")
    both = fastvar.simulate(net, 60, jacobian=True, histograms=True, seed=2, engine=engine)
    alone = fastvar.simulate(net, 60, jacobian=True, seed=2, engine=engine)
    np.testing.assert_array_equal(both.jacobian_stats, alone.jacobian_stats)
    np.testing.assert_array_equal(both.stats, alone.stats)
    back = fastvar.Result.from_dict(both.to_dict())
    np.testing.assert_array_equal(back.histogram_counts, both.histogram_counts)
    np.testing.assert_array_equal(back.jacobian_stats, both.jacobian_stats)


@pytest.mark.parametrize("engine", ["direct", "numpy"])
def test_an_underflowing_jacobian_has_no_spread_and_says_so(engine):
    # init=1e-50 over 30 layers: m1 ~ 1e-50^l underflows within a few layers. m1^2 reached
    # 0 before m1 did: the direct engine raised ZeroDivisionError (a SystemError out of
    # numba), and a subnormal m1^2 gave a spread of lost digits
    net = fastvar.Network([16] * 8, init=1e-50)
    with pytest.warns(fastvar.IncompleteStatisticsWarning):
        res = fastvar.simulate(net, 40, jacobian=True, engine=engine, seed=1)
    m1 = res["jac_m1"]
    measured = m1 * m1 >= np.finfo(np.float64).tiny
    assert measured[0] and not measured.all()
    assert np.isfinite(res["jac_spread"][measured]).all()
    assert np.isnan(res["jac_spread"][~measured]).all()
    assert (res["jac_undefined"][~measured] == 40).all()
    assert any("m1^2 below 1e-308" in line for line in res.warnings)
