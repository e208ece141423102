import json
import math

import numpy as np
import pytest

import fastvar
from fastvar import Result, mlp
from fastvar.results import COLUMNS

NET = mlp(6, 3, activation="tanh", init="xavier")


@pytest.fixture(scope="module")
def res():
    return fastvar.simulate(NET, 2000, seed=9, engine="numpy")


def test_columns_by_key_and_attribute(res):
    assert list(COLUMNS) == res.columns[:len(COLUMNS)]
    for name in COLUMNS:
        assert res[name].shape == (3,)
        assert res[name] is getattr(res, name)
    np.testing.assert_array_equal(res.layer, [1, 2, 3])
    np.testing.assert_array_equal(res.width, [6, 6, 6])
    assert (res.trials, res.seed, res.engine, res.gradients) == (2000, 9, "numpy", True)
    assert res.elapsed_s > 0
    with pytest.raises(KeyError, match="no column"):
        res["nope"]
    with pytest.raises(AttributeError):
        res.nope


def test_gradients_off_gives_nan_gradient_columns():
    res = fastvar.simulate(NET, 200, seed=1, engine="numpy", gradients=False)
    assert np.isnan(res.grad_var).all() and np.isnan(res.g_mean_se).all()
    assert np.isfinite(res.q_mean).all()


def test_dict_json_round_trip(res, tmp_path):
    text = res.to_json()
    data = json.loads(text)  # strict JSON: NaN became null
    again = Result.from_dict(data)
    for name in res.columns:
        np.testing.assert_array_equal(again[name], res[name])
    assert again.network == res.network
    path = tmp_path / "r.json"
    assert res.to_json(path) is None
    assert json.loads(path.read_text())["columns"]["q_mean"] == data["columns"]["q_mean"]
    nan_free = fastvar.simulate(NET, 200, seed=1, engine="numpy", gradients=False).to_json()
    assert "NaN" not in nan_free and json.loads(nan_free)["columns"]["g_mean"] == [None] * 3
    with pytest.raises(ValueError, match="lacks"):
        Result.from_dict({"trials": 3})


def test_csv_and_pandas(res, tmp_path):
    path = tmp_path / "r.csv"
    res.to_csv(path)
    lines = path.read_text().splitlines()
    assert lines[0].split(",") == res.columns and len(lines) == 4
    assert float(lines[1].split(",")[res.columns.index("q_mean")]) == res.q_mean[0]
    df = res.to_pandas()
    assert list(df.index) == [1, 2, 3] and df["z_var"].iloc[2] == res.z_var[2]


def test_failed_write_leaves_nothing_behind(res, tmp_path):
    with pytest.raises(OSError):
        res.to_csv(tmp_path / "missing-folder" / "r.csv")
    assert list(tmp_path.iterdir()) == []


def test_repr_is_a_table(res):
    text = repr(res)
    assert "layer" in text and "±" in text and text.count("\n") >= 5


def test_seed_none_draws_one_and_reports_it():
    res = fastvar.simulate(NET, 100, seed=None, engine="numpy")
    again = fastvar.simulate(NET, 100, seed=res.seed, engine="numpy")
    np.testing.assert_array_equal(res.stats, again.stats)


def test_progress_bar_runs(capsys):
    fastvar.simulate(NET, 100, seed=0, engine="numpy", progress=True)
    assert "trial" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(trials=0), ValueError, "trials must be between 1"),
    (dict(trials=2.5), TypeError, "trials must be an integer"),
    (dict(trials=10, inputs_per_network=3), ValueError, "multiple of inputs_per_network"),
    (dict(trials=10, inputs_per_network=0), ValueError, "inputs_per_network must be"),
    (dict(trials=10, seed=-1), ValueError, "seed must be between"),
    (dict(trials=10, seed=1.5), TypeError, "seed must be an integer"),
    (dict(trials=10, engine="gpu"), ValueError, "unknown engine 'gpu'"),
    (dict(trials=10, engine=3), TypeError, "engine must be"),
    (dict(trials=10, gradients="yes"), TypeError, "gradients must be True or False"),
    (dict(trials=10, threads=0), ValueError, "threads must be between"),
    (dict(trials=10, inputs="uniform"), ValueError, "inputs must be 'normal'"),
    (dict(trials=10, inputs=np.ones(5)), ValueError, r"shape \(6,\)"),
    (dict(trials=10, inputs=np.ones((0, 6))), ValueError, "shape"),
    (dict(trials=10, inputs=np.array([np.nan] + [1.0] * 5)), ValueError, "1 NaN or infinite"),
    (dict(trials=10, inputs=np.array(["a"] * 6)), TypeError, "real numbers"),
])
def test_bad_simulate_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        fastvar.simulate(NET, **kwargs)


def test_not_a_network():
    with pytest.raises(TypeError, match="fastvar.Network"):
        fastvar.simulate([3, 3], 10)


def test_absurd_size_is_refused_before_work():
    with pytest.raises(MemoryError, match="GiB"):
        fastvar.simulate(mlp(1 << 20, 2), 1, engine="numpy")


def test_nonfinite_values_are_counted_and_left_out():
    # sigma_w^2 = 1e200 (linear): |z| grows by ~1e100 a layer and overflows at layer 4
    net = fastvar.Network([3, 3, 3, 3, 3], activation="linear", init=1e200)
    with np.errstate(over="ignore", invalid="ignore"):
        res = fastvar.simulate(net, 100, seed=0, engine="numpy", gradients=False)
    np.testing.assert_array_equal(res.nonfinite, [0, 0, 0, 300])
    assert "non-finite" in repr(res)
    assert math.isfinite(res.q_mean[0]) and math.isfinite(res.z_var[0])
