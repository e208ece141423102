"""Scale and activation parameters have documented ranges, checked up front (issue 8, items 4
and 5): out of range is one clear error; in range, every engine and the theory give numbers."""
import math
import sys

import numpy as np
import pytest

import fastvar
from fastvar import Activation, Network, mlp
from fastvar.activations import PARAM_RANGE
from fastvar.cli import main
from fastvar.engines.numpy_engine import TRUNC_STD
from fastvar.network import BIAS_STD_RANGE, GAIN_RANGE, MAX_WIDTH, SIGMA_W2_RANGE

TINY = sys.float_info.min  # the smallest normal float64


@pytest.mark.parametrize("kwargs, message", [
    (dict(gain=1e200), "gain must be between 1e-100 and 1e+100, got 1e+200"),
    (dict(gain=1e-200), "gain must be between"),  # gain^2 underflows to 0: Var W = 0
    (dict(gain=math.nan), "gain must be finite"),
    (dict(bias_std=1e200), "bias_std must be between 1e-100 and 1e+100 (or 0 for none)"),
    (dict(bias_std=1e-200), "bias_std must be between"),
    (dict(bias_std=-1.0), "bias_std must be >= 0"),
    (dict(init=1e300), "sigma_w^2) must be between 1e-200 and 1e+200"),
    (dict(init=1e-320), "sigma_w^2) must be between"),  # subnormal Var W
    (dict(init=-2.0), "must be > 0"),
])
def test_out_of_range_scales_are_refused(kwargs, message):
    with pytest.raises(ValueError) as err:
        Network([4, 4], **kwargs)
    assert message in str(err.value)


@pytest.mark.parametrize("init", ["lecun", "xavier", "he", "orthogonal", "numeric"])
@pytest.mark.parametrize("corner", [0, 1])
def test_derived_quantities_are_normal_floats_at_the_corners(init, corner):
    # the narrowest and widest layers against the smallest and largest scales
    widths = [1, MAX_WIDTH, 1] if corner else [MAX_WIDTH, 1, MAX_WIDTH]
    for low_high in (0, 1):
        kw = (dict(init=SIGMA_W2_RANGE[low_high]) if init == "numeric"
              else dict(init=init, gain=GAIN_RANGE[low_high]))
        net = Network(widths, bias_std=BIAS_STD_RANGE[low_high], **kw)
        var = net.weight_var
        derived = np.concatenate([var, net.sigma_w2, np.sqrt(3 * var), np.sqrt(var) / TRUNC_STD,
                                  [net.gain ** 2, net.bias_std ** 2]])
        assert np.all(np.isfinite(derived)) and np.all(derived >= TINY), derived


@pytest.mark.parametrize("args, message", [
    (["--gain", "1e200"], "gain must be between"),
    (["--bias-std", "1e200"], "bias_std must be between"),
    (["--gain", "inf"], "gain must be finite"),
    (["--gain", "nan"], "gain must be finite"),
    (["--bias-std", "-1"], "bias_std must be >= 0"),
    (["--init", "1e309"], "must be finite"),
    (["--init", "-2"], "must be > 0"),
    (["--init", "1e-320"], "must be between"),
    (["--activation", "leaky_relu(1e308)"], "between -1000 and 1000"),
    (["--activation", "elu(-1e4)"], "between -1000 and 1000"),
])
def test_cli_reports_bad_scales_in_one_line(capsys, args, message):
    assert main(["simulate", "--width", "4", "--depth", "2", "--trials", "10", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("spec", ["leaky_relu(1e308)", "leaky_relu(-1000.5)", "elu(1001)",
                                  "elu(inf)", "leaky_relu(-inf)"])
def test_activation_parameter_out_of_range(spec):
    with pytest.raises(ValueError, match="between -1000 and 1000|must be finite"):
        Activation.parse(spec)


def test_direct_construction_is_checked_like_parse():
    code = Activation.parse("elu").code
    assert Activation("elu", code, 2).param == 2.0
    with pytest.raises(ValueError, match="between -1000 and 1000"):
        Activation("elu", code, 1e308)
    with pytest.raises(ValueError, match="unknown activation"):
        Activation("tanh", code)  # the code of elu under the label tanh: silently wrong
    with pytest.raises(ValueError, match="takes no parameter"):
        Activation("tanh", Activation.parse("tanh").code, 0.5)


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
@pytest.mark.parametrize("param", [PARAM_RANGE[0], -1.0, 0.0, PARAM_RANGE[1]])
@pytest.mark.parametrize("engine", ["exact", "direct", "numpy"])
def test_parameters_in_range_work_end_to_end(name, param, engine):
    net = mlp(6, 3, activation=f"{name}({param:g})", init="lecun", gain=0.5, bias_std=0.1)
    res = fastvar.simulate(net, 200, seed=1, engine=engine)
    for column in ("q_mean", "q_mean_se", "z_kurt", "a_var", "grad_var", "g_mean",
                   "q_theory", "g_theory"):
        assert np.all(np.isfinite(getattr(res, column))), (column, getattr(res, column))


@pytest.mark.parametrize("value, shown", [(-1.0000001, "-1.0000001"), (1.0000001, "1.0000001")])
def test_an_out_of_range_correlation_is_shown_as_given(value, shown):
    # -1.0000001 was reported as "got -1", which reads as in range
    with pytest.raises(ValueError, match=f"got {shown}$"):
        fastvar.simulate(fastvar.mlp(4, 2), 20, correlation=value)
