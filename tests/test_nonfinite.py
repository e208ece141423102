"""No silent wrong numbers: overflow and NaN are counted, flagged and never shown as 0 +- 0."""
import io
import os
import json
import warnings

import numpy as np
import pytest

import fastvar
from fastvar.activations import ACTIVATION_NAMES, Activation
from fastvar.kernels import activations as kact
from fastvar.kernels.accumulators import PAIR, ROWS, STATS_SIZE, WELFORD, add_networks
from fastvar.results import compute_columns
from fastvar.results.render import theory_note

ENGINES = ("numpy", "direct", "exact")
SPECIALS = np.array([np.nan, np.inf, -np.inf, 1e308, -1e308, 0.0, -0.0, 1.5, -1.5])


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_nan_and_inf_give_nan_through_every_activation_and_derivative(name):
    # an infinite pre-activation is an overflow: relu(-inf) = 0 or tanh(inf) = 1 would hide it
    act = Activation.parse(name)
    bad = np.array([np.nan, np.inf, -np.inf])
    assert np.isnan(act(bad)).all() and np.isnan(act.derivative(bad)).all()
    a, d, a2 = np.empty(3), np.empty(3), np.empty(3)
    kact.phi_dphi_array(act.code, act.param, bad, a, d)
    kact.phi_array(act.code, act.param, bad, a2)
    assert np.isnan([a, d, a2]).all()
    assert np.isnan(kact.dphi_given_phi(act.code, act.param, np.inf, act(np.inf)[()]))


@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_array_kernels_agree_with_the_scalar_functions_on_special_values(name):
    act = Activation.parse(name)
    a, d, a2 = (np.empty(SPECIALS.size) for _ in range(3))
    kact.phi_dphi_array(act.code, act.param, SPECIALS.copy(), a, d)
    kact.phi_array(act.code, act.param, SPECIALS.copy(), a2)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(a, act(SPECIALS))
        np.testing.assert_array_equal(a2, act(SPECIALS))
        np.testing.assert_array_equal(d, act.derivative(SPECIALS))


def test_theory_derivatives_stay_finite_where_q_overflowed():
    # q_theory = inf from layer 4; E[relu'(z)^2] = 1/2 at any q, so g_theory stays finite below
    net = fastvar.mlp(16, 10, activation="relu", init=1e100)
    assert np.isinf(fastvar.theory.variance_map(net)[3])
    assert fastvar.theory.gradient_map(net)[6] == pytest.approx(1.25e299)


def _quiet_simulate(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastvar.simulate(*args, **kwargs)


@pytest.mark.parametrize("engine", ENGINES)
def test_overflow_is_flagged_never_zero(engine):
    # the reported case: past the overflow every engine used to print q = 0 +- 0, nonfinite 0
    net = fastvar.mlp(16, 10, activation="relu", init=1e100)
    with pytest.warns(fastvar.IncompleteStatisticsWarning, match="NaN or infinite"):
        res = fastvar.simulate(net, 100, seed=0, engine=engine)
    assert res.nonfinite_z[-1] > 0 and res.nonfinite_a[-1] > 0 and res.nonfinite_delta[0] > 0
    assert not res.complete[3:].any()
    for name in ("q_mean", "z_var", "a_var", "grad_var", "g_mean"):
        col = res[name]
        # never a clean 0 where values were lost
        assert not ((col == 0) & ~res.complete).any(), name
    assert np.isnan(res.q_mean[-1]) and np.isnan(res.q_mean_se[-1])
    # the flags reach every output a user reads
    assert "*" in res.table() and "warning: NaN or infinite values" in res.table()
    data = json.loads(res.to_json())
    assert data["columns"]["complete"][-1] is False and data["warnings"]
    assert data["columns"]["nonfinite_z"][-1] == res.nonfinite_z[-1]


def test_csv_carries_the_flags(tmp_path):
    res = _quiet_simulate(fastvar.mlp(16, 10, activation="relu", init=1e100), 100, seed=0)
    res.to_csv(tmp_path / "r.csv")
    head, *rows = (tmp_path / "r.csv").read_text().splitlines()
    names = head.split(",")
    for column in ("nonfinite_z", "nonfinite_a", "nonfinite_delta", "overflow", "complete"):
        assert column in names
    last = dict(zip(names, rows[-1].split(",")))
    assert last["complete"].lower() == "false" and int(last["nonfinite_z"]) > 0


def test_deep_overflow_on_the_exact_engine_is_flagged():
    # --width 64 --depth 700 --init 10: q grows 5x a layer and overflows around layer 440
    res = _quiet_simulate(fastvar.mlp(64, 700, activation="relu", init=10.0), 20, seed=0)
    assert not res.complete[-1] and np.isnan(res.q_mean[-1])
    assert (res.nonfinite_z[-100:] > 0).all()


def test_standard_errors_that_overflow_are_flagged_and_not_blamed_on_width():
    # the reported case: values near 1e152 from layer ~213; their squares overflow the SEs
    net = fastvar.mlp(64, 300, activation="relu", init=10.0)
    with pytest.warns(fastvar.IncompleteStatisticsWarning, match="overflowed"):
        res = fastvar.simulate(net, 500, seed=0, gradients=False)
    lost = ~np.isfinite(res.q_mean_se) | ~np.isfinite(res.z_kurt)
    assert lost.any()
    assert not res.complete[lost].any() and res.overflow[lost].all()
    assert "finite width" not in res.table()


def test_heavy_tails_are_not_blamed_on_finite_width():
    # ReLU: E[q^l] equals the theory exactly at every width, so a > 5 SE gap is sampling
    # error from heavy tails (relative variance of q grows like exp(5 L / n))
    net = fastvar.mlp(16, 60, activation="relu", init="he")
    res = _quiet_simulate(net, 400, seed=3, gradients=False)
    text = res.table()
    if "departs" in text:
        assert "exactly at any width" in text and "1/n" not in text
    note = theory_note(res)
    assert note == "" or "finite width" not in note


def test_only_complete_trials_and_networks_enter_the_lengths():
    row = np.zeros((STATS_SIZE,))
    values = np.ones((3, 2, 4))
    values[1, 0, 2] = np.nan  # one unit of one input of network 1
    lengths = np.zeros(3)
    add_networks(row, values, lengths)
    assert row[WELFORD] == 5  # the incomplete trial's ||x||^2 / n is unknown: left out
    assert row[PAIR] == 2  # so is its network's average over inputs
    np.testing.assert_array_equal(lengths, [1.0, np.nan, 1.0])


def test_kurtosis_from_a_finite_state_does_not_overflow():
    # n = 1e6 values of scale 3e74: M4 is finite but M2^2 overflows; kurtosis must stay ~0
    x = np.random.default_rng(0).standard_normal(10 ** 6) * 3e74
    m = fastvar.Moments().update(x)
    assert abs(m.kurtosis()) < 5 * (24 / x.size) ** 0.5 and abs(m.skew()) < 5 * (6 / x.size) ** 0.5
    stats = np.zeros((1, ROWS, STATS_SIZE))
    add_networks(stats[0, 0], x.reshape(1000, 1, 1000), np.empty(1000))
    cols = compute_columns(stats, [1000, 1000], gradients=False)
    assert cols["z_kurt"][0] == pytest.approx(m.kurtosis(), abs=1e-9) and cols["complete"][0]


def test_the_cli_prints_the_flags_once(capsys):
    from fastvar.cli import main

    assert main(["--width", "16", "--depth", "10", "--activation", "relu", "--init", "1e100",
                 "--trials", "100", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert out.count("warning: NaN or infinite values") == 1
    assert "IncompleteStatisticsWarning" not in err
    assert main(["--width", "16", "--depth", "10", "--activation", "relu", "--init", "1e100",
                 "--trials", "100", "--quiet", "--json", "-"]) == 0
    out, err = capsys.readouterr()
    json.load(io.StringIO(out))
    assert "warning: NaN or infinite values" in err


@pytest.mark.parametrize("engine", ENGINES)
def test_underflow_is_flagged_never_a_clean_zero(engine):
    # sigma_w^2 = 1e-200: z ~ 1e-100 at layer 1, squares of q underflow, then z is exactly 0
    res = _quiet_simulate(fastvar.mlp(16, 4, activation="linear", init=1e-200), 200,
                          engine=engine, correlation=0.5)
    assert res.underflow.all() and not res.complete.any()
    assert np.isnan(res.q_mean_se).all() and np.isnan(res.z_kurt).all()
    assert np.isnan(res.dead_frac[1:]).all()  # a linear network is not "dead"
    assert "values underflow" in res.table()
    assert np.isnan(res.c_theory[1:]).all()  # no direction left to speak of


def test_deep_relu_underflow_and_lost_gradients_are_flagged():
    res = _quiet_simulate(fastvar.mlp(16, 1200, activation="relu", init="xavier"), 50)
    assert res.underflow[-1] and not res.complete[-1] and np.isnan(res.q_mean_se[-1])
    lost = res.g_mean == 0
    assert lost.any() and res.underflow[lost].all() and np.isnan(res.g_mean_se[lost]).all()


def test_gradients_lost_to_a_saturated_tanh_are_flagged():
    # z ~ 1e50: tanh'(z) = 1 - 1.0 = 0 exactly, while E[tanh'^2] = 0.53 / sqrt(q) is not 0
    res = _quiet_simulate(fastvar.mlp(64, 4, activation="tanh", init=1e100), 200)
    assert (res.g_mean[:3] == 0).all() and res.underflow[:3].all()
    assert np.isnan(res.g_mean_se[:3]).all() and np.isfinite(res.q_mean_se).all()
    assert (res.g_theory[:3] > 1e40).all()


def test_no_negative_zero_variances_or_dead_fractions_without_data():
    res = _quiet_simulate(fastvar.mlp(16, 10, activation="relu", init=1e100), 100)
    for spread, mean in (("q_var", "q_mean"), ("m_var", "m_mean"), ("g_var", "g_mean")):
        empty = np.isnan(res[mean])  # no complete trial at all: no spread either
        assert empty.any() and np.isnan(res[spread][empty]).all(), spread
    all_nan = res.nonfinite_a == 100 * 16  # every activation NaN: dead or not is unknown
    assert all_nan.any() and np.isnan(res.dead_frac[all_nan]).all()


def test_rows_pairs_have_no_theory_rather_than_a_wrong_one():
    rows = np.random.default_rng(0).standard_normal((4, 32)) * np.array([[0.2], [1], [3], [6]])
    res = fastvar.simulate(fastvar.mlp(32, 3, activation="tanh"), 400, inputs=rows,
                           correlation="rows")
    assert np.isnan(res.c_theory).all() and np.isfinite(res.c_mean).all()


def test_full_disk_names_the_file(tmp_path):
    res = fastvar.simulate(fastvar.mlp(8, 2), 10)
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(OSError, match="/dev/full"):
        res.to_json("/dev/full")


@pytest.mark.parametrize("scale", [1e-200, 5e-324])
@pytest.mark.parametrize("correlation", [None, "rows"])
def test_inputs_whose_squares_underflow_are_refused(scale, correlation):
    # they ran as q0 = 0 and reported q 0 +- 0, dead_frac 1 +- 0, with no warning; "rows"
    # called such a row "all zeros"
    data = np.random.default_rng(0).normal(size=(10, 4)) * scale
    net = fastvar.mlp(4, 3, activation="linear", init=1.0)
    for engine in ("numpy", "direct", "exact"):
        with pytest.raises(ValueError, match="squares underflow") as err:
            fastvar.simulate(net, 400, inputs=data, engine=engine, correlation=correlation)
        assert "all zeros" not in str(err.value)


def test_small_inputs_whose_squares_are_normal_floats_still_run():
    data = np.random.default_rng(0).normal(size=(10, 4)) * 1e-150
    res = fastvar.simulate(fastvar.mlp(4, 2, activation="linear", init=1.0), 400, inputs=data,
                           engine="exact")
    assert res.input_q0 > 0 and (res.q_mean > 0).all()


@pytest.mark.parametrize("engine", ["numpy", "exact"])
def test_statistics_of_the_few_networks_left_after_overflow_are_nan(engine):
    # the reported case: --width 8 --depth 6 --trials 400 --init 1e100: from layer 4 all but
    # the few networks that died early overflow; their q 0 +- 0 and dead_frac 1 +- 0 stood
    # for all 400, gradients that overflowed were called "exactly 0 (phi' underflowed)"
    res = _quiet_simulate(fastvar.mlp(8, 6, activation="relu", init=1e100), 400, seed=0,
                          engine=engine)
    networks = 400
    kept_a = res.stats[:, 1, PAIR]  # networks whose activations were all finite
    kept_dead = res.stats[:, 3, 0]  # networks whose dead fraction was measured
    few = (kept_a < networks / 2) | (kept_dead < networks / 2)
    assert few[3:].all()
    assert np.isnan(res.dead_frac[few]).all() and np.isnan(res.dead_frac_se[few]).all()
    assert not ((res.q_mean == 0) | (res.g_mean == 0)).any()
    text = "\n".join(res.warnings)
    assert "underflow" not in text and "exactly 0" not in text
    assert not res.underflow.any()
    assert f"of {networks}" in text
    if engine == "exact":  # values overflow there (NaN or infinite), not only their squares
        assert np.isnan(res.q_mean[3:]).all() and np.isnan(res.g_mean[:5]).all()
        kept = int(res.stats[3:, 0, PAIR].min())
        assert kept < 20 and f"use only the {kept} of {networks} networks" in text
    # where most networks are complete the numbers are today's
    assert res.dead_frac[0] == res.stats[0, 3, 1] and np.isfinite(res.g_mean[-1])


def test_survivor_rule_leaves_complete_layers_bitwise_unchanged():
    res = _quiet_simulate(fastvar.mlp(8, 6, activation="relu", init=1e100), 400, seed=0,
                          engine="exact")
    plain = compute_columns(res.stats, res.network.widths, True)  # no network count: no rule
    for name in ("q_mean", "q_mean_se", "dead_frac", "z_var"):
        np.testing.assert_array_equal(res[name][:3], plain[name][:3])


@pytest.mark.parametrize("engine", ["exact", "numpy"])
def test_a_variance_se_lost_to_rounding_is_nan_and_said(engine):
    # sigmoid at gain 1e-6: a = 1/2 + ~1e-7, its mean 1e6 times its spread; the delta
    # method's terms cancel to rounding, and a_var_se came out exactly 0 or 58x too large
    # with every layer complete and nothing said
    net = fastvar.mlp(64, 3, activation="sigmoid", gain=1e-6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fastvar.simulate(net, 2000, seed=0, engine=engine)
    assert np.isnan(res.a_var_se).all() and np.isfinite(res.a_var).all()
    assert np.isfinite(res.z_var_se).all() and res.complete.all()
    assert any("a_var_se at layers 1-3 show nan" in str(w.message) for w in caught)
    # at gain 1e-3 the same SEs keep their digits: nothing NaN, nothing said
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = fastvar.simulate(fastvar.mlp(64, 3, activation="sigmoid", gain=1e-3), 2000,
                               seed=0, engine=engine)
    assert np.isfinite(res.a_var_se).all() and not caught


def test_columns_are_the_plain_numpy_formulas_of_the_stats():
    # the per-layer arithmetic runs in one Numba kernel: each column must be its NumPy
    # formula to the bit, at NaN, infinite, zero and tiny states as well as plain ones
    rng = np.random.default_rng(5)
    stats = np.abs(rng.normal(size=(300, ROWS, STATS_SIZE))) + 1.0
    stats[..., [0, 5, 8]] = rng.integers(2, 60, size=(300, ROWS, 3))  # counts
    stats[..., 14:] = 0.0  # nothing left out
    stats[1, 0, [0, 8]] = 0.0  # no values: NaN
    stats[2, 0, 2] = 0.0  # constant values: no shape
    stats[3, 0, [8, 13]] = [1.0, 0.0]  # one network
    stats[4, 0, 11] = np.inf  # cxx overflowed
    stats[5, 0, 2:5] = [1e-300, 1e-310, np.nan]
    stats[6, 0, 9:12] = [-0.0, 1e200, -0.0]
    stats[7, 0, 13] = np.nan
    cols = compute_columns(stats, [3] * 301, True, pairs=True)
    z, net = stats[:, 0], stats[:, 3]
    n, mean, m2, m3, m4 = z[:, :5].T
    nw, mw, m2w = z[:, 5:8].T
    npair, mx, cxx, cyy = z[:, 8], z[:, 9], z[:, 11], z[:, 13]
    with np.errstate(all="ignore"):
        expected = {
            "z_mean": np.where(n > 0, mean, np.nan), "z_var": np.where(n > 0, m2 / n, np.nan),
            "z_skew": np.where(m2 > 0, np.sqrt(n) * (m3 / m2) / np.sqrt(m2), np.nan),
            "z_kurt": np.where(m2 > 0, n * (m4 / m2) / m2 - 3.0, np.nan),
            "q_mean": np.where(nw > 0, mw, np.nan),
            "q_var": np.where(nw > 1, m2w / (nw - 1.0), np.nan),
            "q_mean_se": np.sqrt(cyy) * np.sqrt(1.0 / ((npair - 1.0) * npair)),
            "c_mean_se": np.sqrt(net[:, 7] / (net[:, 5] - 1.0) / net[:, 5]),
            "dead_frac_se": np.sqrt(net[:, 2] / ((net[:, 0] - 1.0) * net[:, 0])),
        }
        # the variance's SE by the delta method, NaN where rounding would swamp it
        my, cxy = z[:, 10], z[:, 12]
        big = np.maximum(np.abs(2 * mx) * np.sqrt(cxx), np.sqrt(cyy))
        unit = np.where(big > 0, big, 1.0)
        t = 2 * mx / unit
        inner = t * t * cxx - 2 * t * (cxy / unit) + (cyy / unit) / unit
        terms = t * t * cxx + np.abs(2 * t * (cxy / unit)) + (cyy / unit) / unit
        spread = np.fmax(np.abs(mx) / np.sqrt(cxx / (npair - 1.0)),
                         np.abs(my) / np.sqrt(cyy / (npair - 1.0)))
        rounding = inner <= 20.0 * np.finfo(float).eps * spread * terms / np.sqrt(npair)
        expected["z_var_se"] = np.where(rounding, np.nan, big * np.sqrt(
            np.maximum(inner, 0.0) * (1.0 / ((npair - 1.0) * npair))))
    for name, values in expected.items():
        np.testing.assert_array_equal(cols[name], values, err_msg=name)
    assert np.isnan(cols["z_var_se"][[1, 4, 7]]).all() and np.isfinite(cols["z_var_se"][0])
    finite = np.isfinite(stats[:, :5, :14]).all(axis=(1, 2))
    np.testing.assert_array_equal(cols["overflow"], ~finite)


@pytest.mark.parametrize("cut", [np.s_[:, :3], np.s_[:, :ROWS - 1], np.s_[:, :, :8], np.s_[0],
                                 np.s_[None]])
def test_stats_of_another_shape_are_refused_not_read_past(cut):
    # the columns kernels index fixed rows and fields without bounds checks: 3 rows gave
    # plausible z columns and the rest from the memory after the array
    from fastvar.results import compute_columns
    from fastvar.results.columns import heavy_tails, network_counts

    res = fastvar.simulate(fastvar.mlp(4, 3), 10, seed=1, engine="numpy")
    bad = res.stats[cut]
    with pytest.raises(ValueError, match=rf"shape \(L, {ROWS} or more, {STATS_SIZE}\)"):
        compute_columns(bad, res.network.widths, True, networks=10)
    with pytest.raises(ValueError, match="stats must be"):
        network_counts(bad, 10, True)
    with pytest.raises(ValueError, match="row must be"):
        heavy_tails(res.stats[:, 0, :8])
