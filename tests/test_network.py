import copy
import pickle

import numpy as np
import pytest

from fastvar import Network, mlp


def test_weight_variance_of_each_scheme():
    w = [4, 8, 2]
    np.testing.assert_allclose(Network(w, init="lecun").weight_var, [1 / 4, 1 / 8])
    np.testing.assert_allclose(Network(w, init="he").weight_var, [2 / 4, 2 / 8])
    np.testing.assert_allclose(Network(w, init="kaiming", gain=2).weight_var, [8 / 4, 8 / 8])
    np.testing.assert_allclose(Network(w, init="glorot").weight_var, [2 / 12, 2 / 10])
    np.testing.assert_allclose(Network(w, init=1.5).weight_var, [1.5 / 4, 1.5 / 8])
    np.testing.assert_allclose(Network(w, init="orthogonal").weight_var, [1 / 8, 1 / 8])
    np.testing.assert_allclose(Network(w, init="xavier").sigma_w2, [4 * 2 / 12, 8 * 2 / 10])


def test_mlp_shapes_and_normalised_fields():
    net = mlp(16, 3, input_width=5, activation="ELU(0.5)", init="Glorot", distribution="Uniform")
    assert net.widths == (5, 16, 16, 16) and net.depth == 3
    assert (net.activation, net.init, net.distribution) == ("elu(0.5)", "xavier", "uniform")
    assert mlp(7, 2).widths == (7, 7, 7)
    assert net.n_weights == 5 * 16 + 2 * 16 * 16
    assert Network(**net.to_dict()) == net


def test_frozen():
    with pytest.raises(AttributeError):
        mlp(4, 2).gain = 3.0


def test_weight_variances_are_read_only_also_after_pickling_and_copying():
    # computed once per network and handed out to every caller: a write would change the
    # network for every later run
    net = mlp(8, 3, init="xavier", residual=0.5, norm="rms")
    for same in (net, pickle.loads(pickle.dumps(net)), copy.copy(net), copy.deepcopy(net)):
        assert same == net and same.n_weights == net.n_weights
        np.testing.assert_array_equal(same.weight_var, net.weight_var)
        with pytest.raises(ValueError, match="read-only"):
            same.weight_var[0] = 1.0
        with pytest.raises(ValueError):
            same.weight_var.flags.writeable = True


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(widths=[4]), ValueError, "at least one layer"),
    (dict(widths=[4, 0]), ValueError, r"widths\[1\] must be between 1"),
    (dict(widths=[4, -3]), ValueError, "must be between"),
    (dict(widths=[4, 2.5]), TypeError, "integer"),
    (dict(widths=[4, True]), TypeError, "integer"),
    (dict(widths="44"), TypeError, "sequence"),
    (dict(widths=[4, 1 << 30]), ValueError, "between 1 and"),
    (dict(widths=[4, 4], activation="nope"), ValueError, "unknown activation"),
    (dict(widths=[4, 4], init="random"), ValueError, "unknown init"),
    (dict(widths=[4, 4], init=0.0), ValueError, "sigma_w"),
    (dict(widths=[4, 4], init=float("nan")), ValueError, "finite"),
    (dict(widths=[4, 4], distribution="cauchy"), ValueError, "unknown distribution"),
    (dict(widths=[4, 4], gain=0.0), ValueError, "gain must be > 0"),
    (dict(widths=[4, 4], gain=float("inf")), ValueError, "finite"),
    (dict(widths=[4, 4], bias_std=-1.0), ValueError, "bias_std must be >= 0"),
    (dict(widths=[4, 4], bias_std="1"), TypeError, "real number"),
    (dict(widths=[4, 4], init=2.0, gain=2.0), ValueError, "fold it into"),
    (dict(widths=[4, 4], init="orthogonal", distribution="uniform"), ValueError, "orthogonal"),
])
def test_bad_network_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        Network(**kwargs)


@pytest.mark.parametrize("args, message", [((0, 3), "width"), ((4, 0), "depth"),
                                           ((4, 2, 0), "input_width")])
def test_bad_mlp_parameters(args, message):
    with pytest.raises(ValueError, match=message):
        mlp(*args)


def test_millions_of_layers_are_checked_fast_and_bools_are_no_widths():
    net = mlp(1, 1 << 22)  # vectorized check (a per-layer loop took 15 s at 2^24 layers)
    assert net.depth == 1 << 22 and net.widths[-1] == 1
    with pytest.raises(TypeError, match="integer"):
        Network([3, True, 2])
    with pytest.raises(ValueError, match=r"widths\[2\]"):
        Network(np.array([3, 2, 0]))


def test_layer_norm_over_a_single_unit_is_refused():
    # it is always 0: the run flagged every later layer as "died, as dead ReLUs do" (review)
    with pytest.raises(ValueError, match=r"norm='layer' over a layer of width 1 \(layer 2\)"):
        Network([3, 4, 1, 4], norm="layer")
    Network([3, 4, 1, 4], norm="rms")  # a sign: fine
    Network([1, 4, 4], norm="layer")  # the input is not normalized
