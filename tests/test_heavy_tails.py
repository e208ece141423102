"""Error bars are not shown as reliable where heavy tails make them too small (issue 18).

At width 1 a linear network's q^l is a product of l + 1 chi-square(1) factors (the input's
and each layer's): over 4000 networks the sample variance, and so the SE, misses most of
the variance from the third factor on. Such layers are flagged (``q_heavy_tails``,
``g_heavy_tails``, a warning line, ! in the table) instead of showing a confident SE.
"""
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastvar
from fastvar.kernels.accumulators import PAIR, ROWS, STATS_SIZE, Z
from fastvar.results import compute_columns

DATA_DIR = Path(__file__).parent / "data"
WIDTH_1 = fastvar.mlp(1, 4, activation="linear", init=1.0)
TRIALS = 4000


def _quiet_simulate(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastvar.simulate(*args, **kwargs)


def test_width_1_error_bars_are_flagged(tmp_path):
    # the reported case: q at layer 4 lies 4 SE from the exact theory with nothing said
    with pytest.warns(fastvar.IncompleteStatisticsWarning, match="heavy-tailed"):
        res = fastvar.simulate(WIDTH_1, TRIALS, seed=16, engine="exact")
    assert abs(res.q_mean[3] - res.q_theory[3]) > 4 * res.q_mean_se[3]
    # from the third chi-square factor on: q^l has l + 1 of them, g^l has L - l + 1
    np.testing.assert_array_equal(res.q_heavy_tails, [False, True, True, True])
    np.testing.assert_array_equal(res.g_heavy_tails, [True, True, False, False])
    assert res.complete.all()  # nothing was left out: these are a separate flag
    lines = res.warnings
    assert len(lines) == 2
    assert lines[0].startswith("layers 2-4: q (or m) is too heavy-tailed")
    assert lines[1].startswith("layers 1-2: g is too heavy-tailed")
    assert "q_mean_se" in lines[0] and "g_mean_se" in lines[1]
    # the table shows the same lines, wrapped to fit 100 columns
    from fastvar._text import wrapped

    assert "\n".join(part for line in lines for part in wrapped("warning: ", line)) in res.table()
    # the files carry the flags, and reading them back gives the same
    data = json.loads(res.to_json())
    assert data["columns"]["q_heavy_tails"] == [False, True, True, True]
    assert data["warnings"] == lines
    again = fastvar.Result.from_dict(data)
    np.testing.assert_array_equal(again.g_heavy_tails, res.g_heavy_tails)
    res.to_csv(tmp_path / "r.csv")
    head, *rows = (tmp_path / "r.csv").read_text().splitlines()
    flags = [dict(zip(head.split(","), row.split(",")))["q_heavy_tails"] for row in rows]
    assert flags == ["false", "true", "true", "true"]


def test_the_table_marks_the_flagged_layers():
    res = _quiet_simulate(WIDTH_1, TRIALS, seed=16, engine="exact", gradients=False)
    assert not res.g_heavy_tails.any()
    marks = [line.split()[0] for line in res.table().splitlines()[1:5]]
    assert marks == ["1", "2!", "3!", "4!"]


def test_coverage_holds_where_not_flagged_and_fails_where_flagged():
    # the experiment at depth 6: 40 seeds; within +-2 SE of the exact theory about
    # 95% of the time where not flagged, and well below where flagged (bounds: 3 binomial SE)
    net = fastvar.mlp(1, 6, activation="linear", init=1.0)
    covered, flagged = [], []
    for seed in range(40):
        res = _quiet_simulate(net, TRIALS, seed=seed, engine="exact")
        for x in ("q", "g"):
            gap = np.abs(res[f"{x}_mean"] - res[f"{x}_theory"]) / res[f"{x}_mean_se"]
            covered.append(gap <= 2)
            flagged.append(res[f"{x}_heavy_tails"])
    covered, flagged = np.concatenate(covered), np.concatenate(flagged)
    for mask, sign in ((~flagged, 1), (flagged, -1)):
        bound = 0.95 - 3 * math.sqrt(0.95 * 0.05 / mask.sum())
        assert sign * (covered[mask].mean() - bound) > 0, (sign, covered[mask].mean(), bound)


@pytest.mark.parametrize("net", [fastvar.mlp(64, 20, activation="relu", init="he"),
                                 fastvar.mlp(64, 10, activation="tanh", init="xavier")])
def test_typical_networks_are_not_flagged(net):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning at all
        res = fastvar.simulate(net, 2000, seed=0)
    assert not res.q_heavy_tails.any() and not res.g_heavy_tails.any()
    assert res.warnings == [] and "!" not in res.table()


def _pair_row(networks: int, v: float) -> np.ndarray:
    """Stats of one layer whose per-network q has mean 1 and relative variance v."""
    stats = np.zeros((1, ROWS, STATS_SIZE))
    stats[0, Z, PAIR:PAIR + 6] = [networks, 0.0, 1.0, 1.0, 0.0, v * (networks - 1)]
    return stats


@pytest.mark.parametrize("networks, v", [(1000, 6.93), (4000, 13.98), (10 ** 5, 66.89)])
def test_the_criterion_is_the_documented_one(networks, v):
    # ln(1 + v) > z^2 / 4, z = Phi^-1(1 - 2 / N): the thresholds the docstrings quote
    def flag(x):
        return compute_columns(_pair_row(networks, x), [1, 1], gradients=False)["q_heavy_tails"]

    assert not flag(v * 0.999)[0] and flag(v * 1.001)[0]


def test_light_tails_are_not_flagged_however_few_the_networks():
    # v <= 1 need not be skewed at all: five networks with v = 0.9 give an unreliable SE
    # for want of networks, not for heavy tails
    cols = compute_columns(_pair_row(5, 0.9), [1, 1], gradients=False)
    assert not cols["q_heavy_tails"][0]
    assert compute_columns(_pair_row(5, 1.1), [1, 1], gradients=False)["q_heavy_tails"][0]


def test_files_written_before_the_flags_get_them():
    old = fastvar.load(DATA_DIR / "result_plain.json")
    assert "q_heavy_tails" not in json.loads((DATA_DIR / "result_plain.json").read_text())[
        "columns"]
    assert old.q_heavy_tails.dtype == bool and not old.q_heavy_tails.any()
    assert old.g_heavy_tails.shape == (old.network.depth,)


def test_layers_where_every_network_died_are_flagged(tmp_path):
    # the reported case: ReLU at width 1 keeps E q = 2, but every sampled network died by
    # layer 15; those layers showed 0 +- 0 with no flag, complete at the output layer
    net = fastvar.mlp(1, 50, activation="relu")
    with pytest.warns(fastvar.IncompleteStatisticsWarning, match="exactly 0 in every network"):
        res = fastvar.simulate(net, 2000, seed=0, engine="exact")
    dead = res.q_mean == 0
    assert dead[14:].all()
    for name in ("q_mean_se", "m_mean_se", "z_var_se", "dead_frac_se"):
        assert np.isnan(getattr(res, name)[dead]).all(), name
    assert res.q_heavy_tails[dead].all() and not res.complete[dead].any()
    assert res.g_heavy_tails[:-1].all()  # gradients 0 below: every network died above
    assert "layers 14-50: the values are exactly 0 in every network" in " ".join(res.warnings)
    assert "0±0" not in res.table()
    from fastvar.results.render import theory_note

    assert "50" not in theory_note(res)
    data = json.loads(res.to_json())  # strict JSON: the NaN SEs are null
    assert data["columns"]["q_mean_se"][-1] is None
    again = fastvar.Result.from_dict(data)
    np.testing.assert_array_equal(again.q_heavy_tails, res.q_heavy_tails)


def test_jacobian_layers_where_every_network_died_are_flagged():
    # the same hole: jac_m1 = 0 +- 0 where every network's Jacobian is all-zero
    res = _quiet_simulate(fastvar.mlp(1, 50, activation="relu"), 2000, seed=0,
                          engine="direct", jacobian=True)
    dead = res.jac_undefined == 2000
    assert dead[14:].all() and (res.jac_m1[dead] == 0).all()
    assert np.isnan(res.jac_m1_se[dead]).all() and res.jac_heavy_tails[dead].all()
    assert np.isfinite(res.jac_m1_se[0])


def test_an_all_zero_input_without_biases_is_truly_zero():
    net = fastvar.mlp(8, 3, activation="relu")
    res = _quiet_simulate(net, 200, seed=0, engine="exact", inputs=np.zeros(8))
    assert (res.q_mean == 0).all() and not res.q_heavy_tails.any()
    assert not any("exactly 0 in every network (every" in line for line in res.warnings)
