import numpy as np
import pytest

from fastvar import ACTIVATION_NAMES, Activation

SPECS = list(ACTIVATION_NAMES) + ["leaky_relu(0.2)", "elu(0.5)"]


@pytest.mark.parametrize("spec", SPECS)
def test_derivative_matches_finite_differences(spec):
    act = Activation.parse(spec)
    x = np.linspace(-4, 4, 801)
    x = x[np.abs(x) > 1e-3]  # the kink of relu-like functions at 0
    h = 1e-6
    numeric = (act(x + h) - act(x - h)) / (2 * h)
    np.testing.assert_allclose(act.derivative(x), numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("spec, x, expected", [
    ("relu", [-1.0, 2.0], [0.0, 2.0]),
    ("leaky_relu", [-1.0], [-0.01]),
    ("leaky_relu(0.2)", [-1.0], [-0.2]),
    ("elu(0.5)", [-1e9], [-0.5]),
    ("selu", [1.0], [1.0507009873554805]),
    ("sigmoid", [0.0, -800.0, 800.0], [0.5, 0.0, 1.0]),
    ("softplus", [0.0, 800.0], [np.log(2.0), 800.0]),
    ("gelu", [1.0], [0.8413447460685429]),
    ("silu", [1.0], [0.7310585786300049]),
    ("erf", [0.5], [0.5204998778130465]),
])
def test_known_values(spec, x, expected):
    np.testing.assert_allclose(Activation.parse(spec)(x), expected, rtol=1e-14, atol=1e-300)


def test_parse_aliases_and_labels():
    assert Activation.parse("  Leaky_ReLU( 0.3 ) ").label == "leaky_relu(0.3)"
    assert Activation.parse("swish").name == "silu"
    assert Activation.parse("tanh").label == "tanh"


@pytest.mark.parametrize("spec, message", [
    ("foo", "unknown activation"), ("tanh(2)", "takes no parameter"),
    ("elu(abc)", "must be a number"), ("elu(nan)", "must be finite"),
    ("relu(", "unknown activation"),
])
def test_bad_names(spec, message):
    with pytest.raises(ValueError, match=message):
        Activation.parse(spec)


def test_non_string_is_type_error():
    with pytest.raises(TypeError):
        Activation.parse(3)
