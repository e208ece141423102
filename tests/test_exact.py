"""The exact engine (Gaussian conditioning) against the brute-force engines, in law.

Agreement is statistical: a column is compared through its mean and standard error over
independent batches (fixed seeds), |exact - brute| <= 5 * sqrt(se_exact^2 + se_brute^2);
joint laws of per-trial quantities use two-sample tests against a NumPy brute force.
"""
import numpy as np
import pytest
from scipy import stats

import fastvar
import fastvar.api
from fastvar import Network, mlp
from fastvar.engines import ENGINES
from fastvar.engines.base import INPUTS_DATA, INPUTS_NORMAL, Plan, kernel_args
from fastvar.kernels import exact as kernel

from .helpers import assert_agree

BRUTE = [name for name in ("numpy", "direct") if name in ENGINES]
COLUMNS = ("q_mean", "q_var", "z_var", "z_kurt", "a_mean", "g_mean", "grad_var")


def _batches(net, engine, trials, batches, seed, **kw):
    """Mean and SE over ``batches`` independent runs of every column in COLUMNS."""
    runs = [fastvar.simulate(net, trials, seed=seed + b, engine=engine, **kw)
            for b in range(batches)]
    out = {}
    for col in COLUMNS:
        values = np.array([r[col] for r in runs])
        out[col] = values.mean(0), values.std(0, ddof=1) / np.sqrt(batches)
    return out


CASES = {
    "tanh-64-bias": (mlp(64, 4, activation="tanh", init="lecun", gain=1.3, bias_std=0.3), 1, 4000),
    "relu-4-he": (mlp(4, 6, activation="relu", init="he"), 1, 20000),
    "erf-2": (mlp(2, 5, activation="erf", init=2.0, bias_std=0.2), 1, 20000),
    "sigmoid-xavier-unequal": (Network([5, 3, 8, 2], activation="sigmoid", init="xavier", gain=2.0,
                                       bias_std=0.5), 1, 20000),
    "selu-8-k2-bias": (mlp(8, 4, activation="selu", init="lecun", bias_std=0.4), 2, 20000),
    "gelu-3-k3": (Network([2, 3, 3, 2], activation="gelu", init="he", bias_std=0.1), 3, 12000),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("brute", BRUTE)
def test_columns_match_brute_force(case, brute):
    net, k, trials = CASES[case]
    exact = _batches(net, "exact", trials, 10, 100, inputs_per_network=k)
    other = _batches(net, brute, trials, 10, 200, inputs_per_network=k)
    assert_agree(exact, other, COLUMNS)


def test_relu_all_dead_units_stay_finite():
    # width 2, ReLU: often ||a|| = 0, then u = 0 and W^T delta is pure noise (u = W a is then
    # 0 and W is unconstrained)
    net = mlp(2, 8, activation="relu", init="he", bias_std=0.3)
    res = fastvar.simulate(net, 20000, seed=3, engine="exact")
    assert res.complete.all() and np.isfinite(res.stats).all()
    assert_agree(_batches(net, "exact", 10000, 10, 10), _batches(net, "numpy", 10000, 10, 20),
                 COLUMNS)


@pytest.mark.parametrize("widths, k", [([6, 4, 9, 3], 1), ([6, 4, 9, 3], 2), ([3, 5, 2], 3)])
def test_orthogonal_forward_matches_numpy(widths, k):
    net = Network(widths, activation="tanh", init="orthogonal", gain=1.4, bias_std=0.2)
    kw = dict(inputs_per_network=k, gradients=False)
    cols = ("q_mean", "q_var", "z_var", "z_kurt", "a_mean")
    assert_agree(_batches(net, "exact", 12000, 10, 1, **kw),
                 _batches(net, "numpy", 12000, 10, 2, **kw), cols)


def test_data_inputs_match_numpy():
    data = np.random.default_rng(0).standard_normal((5, 7)) * np.arange(1, 8)
    net = Network([7, 6, 6], activation="softplus", init="lecun", bias_std=0.2)
    kw = dict(inputs=data, inputs_per_network=2)
    assert_agree(_batches(net, "exact", 10000, 10, 1, **kw),
                 _batches(net, "numpy", 10000, 10, 2, **kw), COLUMNS)


# --- per-trial joint laws against a NumPy brute force written here -------------------------

def _brute_trials(net, networks, k, seed):
    """q (N, k, L), g (N, k, L), c (N, 2, L) by drawing every weight: a naive twin."""
    rng = np.random.default_rng(seed)
    phi, widths, sb = net.activation_fn, net.widths, net.bias_std
    a = rng.standard_normal((networks, k, widths[0]))
    zs, ws = [], []
    for layer in range(1, len(widths)):
        w = rng.standard_normal((networks, widths[layer], widths[layer - 1]))
        w *= np.sqrt(net.weight_var[layer - 1])
        z = a @ w.transpose(0, 2, 1) + sb * rng.standard_normal((networks, 1, widths[layer]))
        a = phi(z)
        zs.append(z)
        ws.append(w)
    d = rng.standard_normal(zs[-1].shape)
    ds = [d]
    for layer in range(len(widths) - 1, 1, -1):
        d = (d @ ws[layer - 1]) * phi.derivative(zs[layer - 2])
        ds.insert(0, d)
    q = np.stack([(z ** 2).mean(-1) for z in zs], -1)
    g = np.stack([(d ** 2).mean(-1) for d in ds], -1)
    c = np.stack([np.stack([(x[:, 0] * x[:, 1]).mean(-1) if k > 1 else 0 * x[:, 0, 0]
                            for x in pair], -1) for pair in zip(zs, ds)], -1)
    return q, g, c


def _exact_trials(net, networks, k, seed):
    plan = Plan(net, networks * k, seed, INPUTS_NORMAL, np.zeros((0, net.widths[0])), k, True)
    return kernel.sample_trials(kernel_args(plan))


def _same_law(x, y, alpha=1e-3):
    assert stats.ks_2samp(x, y).pvalue > alpha, (np.mean(x), np.mean(y))


JOINT = {
    # the rank correlation of q^L and g^1 is 0.22 here, and 0 if the backward pass drew
    # fresh weights (the "gradient independence" shortcut): a sharp test of the conditioning
    "linear": Network([4, 3, 3, 3], activation="linear", init=1.0),
    "tanh-bias": Network([6, 4, 4, 4, 4], activation="tanh", init="lecun", gain=1.5, bias_std=0.3),
    "relu-2-bias": Network([3, 2, 2, 2, 2], activation="relu", init="he", bias_std=0.3),
}


@pytest.mark.parametrize("case", list(JOINT))
def test_joint_law_of_last_q_and_first_g(case):
    net, n = JOINT[case], 10000
    qe, ge, _ = _exact_trials(net, n, 1, 11)
    qb, gb, _ = _brute_trials(net, n, 1, 12)
    e, b = (qe[:, 0, -1], ge[:, 0, 0]), (qb[:, 0, -1], gb[:, 0, 0])
    re, rb = stats.spearmanr(*e)[0], stats.spearmanr(*b)[0]
    assert abs(rb) > 0.1  # there is a dependence to detect
    assert abs(np.arctanh(re) - np.arctanh(rb)) <= 4 * 1.06 * np.sqrt(2 / (n - 3))  # Fisher z
    _same_law(e[0] * e[1], b[0] * b[1])
    for layer in range(net.depth):
        _same_law(qe[:, 0, layer], qb[:, 0, layer])
        _same_law(ge[:, 0, layer], gb[:, 0, layer])
        _same_law(qe[:, 0, layer] * ge[:, 0, layer], qb[:, 0, layer] * gb[:, 0, layer])


@pytest.mark.parametrize("net", [Network([5, 4, 3, 4], activation="relu", init="he", bias_std=0.5),
                                 Network([3, 6, 6, 6], activation="tanh", init="lecun", gain=1.5)],
                         ids=["relu-bias", "tanh"])
def test_two_inputs_correlation_per_layer(net):
    qe, ge, ce = _exact_trials(net, 8000, 2, 21)
    qb, gb, cb = _brute_trials(net, 8000, 2, 22)
    for layer in range(net.depth):
        # the two inputs' pre-activations, and their cotangents, per layer
        pairs = ((ce[:, 0], cb[:, 0], qe, qb), (ce[:, 1], cb[:, 1], ge, gb))
        for x, y, length_e, length_b in pairs:
            _same_law(x[:, layer], y[:, layer])
            with np.errstate(invalid="ignore", divide="ignore"):  # dead ReLU layers: 0/0
                rho_e = x[:, layer] / np.sqrt(length_e[:, 0, layer] * length_e[:, 1, layer])
                rho_b = y[:, layer] / np.sqrt(length_b[:, 0, layer] * length_b[:, 1, layer])
            _same_law(rho_e[np.isfinite(rho_e)], rho_b[np.isfinite(rho_b)])
        _same_law(ge[:, 0, layer] * ge[:, 1, layer], gb[:, 0, layer] * gb[:, 1, layer])


# --- reproducibility, edge cases, errors ----------------------------------------------------

def test_bitwise_identical_for_threads_and_chunks():
    import numba
    net = mlp(16, 3, activation="tanh", init="lecun", bias_std=0.1)
    kw = dict(seed=9, engine="exact", inputs_per_network=2)
    one = fastvar.simulate(net, 4096, threads=1, **kw)
    many = fastvar.simulate(net, 4096, threads=numba.config.NUMBA_NUM_THREADS, **kw)
    np.testing.assert_array_equal(one.stats, many.stats)
    plan, engine = fastvar.api.plan(net, 4096, **kw)
    assert plan.blocks >= 4
    split = np.concatenate([engine.run(plan, 0, 1), engine.run(plan, 1, plan.blocks - 1)])
    np.testing.assert_array_equal(split, engine.run(plan, 0, plan.blocks))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the huge moments overflow in Result
def test_overflow_shows_as_nonfinite_values_not_zeros():
    net = mlp(4, 5, activation="linear", init=1e120)  # ||a||^2 overflows after two layers
    res = fastvar.simulate(net, 64, engine="exact", gradients=False)
    assert res.nonfinite_z[:2].sum() == 0 and (res.nonfinite_z[2:] == 64 * 4).all()
    assert res.complete[0] and not res.complete[1:].any()  # squares overflow from layer 2


def test_repeated_input_has_rank_one_gram():
    # a single fixed input, k = 2: both columns see the same z, so c == q at every layer
    net = Network([4, 3, 3], activation="tanh", init="lecun", bias_std=0.3)
    plan = Plan(net, 200 * 2, 1, INPUTS_DATA, np.ones((1, 4)), 2, True)
    q, g, c = kernel.sample_trials(kernel_args(plan))
    np.testing.assert_allclose(c[:, 0], q[:, 0], rtol=1e-9)
    np.testing.assert_allclose(q[:, 0], q[:, 1], rtol=1e-9)
    assert np.isfinite(g).all()


@pytest.mark.parametrize("k, rank", [(1, 1), (1, 0), (2, 2), (2, 1), (5, 3), (40, 40), (40, 7)])
def test_factor_and_generalized_inverse_of_singular_gram_matrices(k, rank):
    rng = np.random.default_rng(k + rank)
    a = rng.standard_normal((50, rank)) @ rng.standard_normal((rank, k))  # m x k, rank r
    g = a.T @ a
    work, perm, root, tmp = np.empty((k, k)), np.empty(k, np.int64), np.empty((k, k)), np.empty(k)
    assert kernel.psd_factor(g, work, perm, root) == rank
    np.testing.assert_allclose(root @ root.T, g, atol=1e-10 * max(1.0, np.abs(g).max()))
    ginv = np.empty((k, k))
    kernel.ginv_apply(root, perm, rank, np.eye(k), ginv, tmp)
    np.testing.assert_allclose(g @ ginv @ g, g, atol=1e-8 * max(1.0, np.abs(g).max()))
    # what the engine relies on: A G^- A^T is the projection onto the columns of A
    np.testing.assert_allclose(a @ ginv @ a.T, a @ np.linalg.pinv(a), atol=1e-8)


def test_non_gaussian_weights_are_refused_and_auto_moves_on():
    net = mlp(8, 2, distribution="uniform")
    with pytest.raises(ValueError, match="uniform weights are not Gaussian.*can: numpy"):
        fastvar.simulate(net, 10, engine="exact")
    assert fastvar.simulate(net, 10).engine != "exact"
    assert fastvar.simulate(mlp(8, 2), 10).engine == "exact"


def test_orthogonal_gradients_with_a_bias_or_pairs_are_refused():
    net = mlp(8, 2, init="orthogonal", bias_std=0.1)
    with pytest.raises(ValueError, match="gradients with orthogonal weights.*can: numpy"):
        fastvar.simulate(net, 10, engine="exact")
    assert fastvar.simulate(net, 10, gradients=False).engine == "exact"
    assert fastvar.simulate(net, 10).engine != "exact"
    assert fastvar.simulate(mlp(8, 2, init="orthogonal"), 10, correlation=0.5).engine != "exact"
    assert fastvar.simulate(mlp(8, 2, init="orthogonal"), 10).engine == "exact"


@pytest.mark.parametrize("widths, activation", [([6, 4, 9, 3, 5], "tanh"), ([2, 2, 3, 2], "relu"),
                                                ([1, 3, 1, 2], "linear"), ([16, 64, 32], "tanh")])
def test_orthogonal_gradients_match_direct(widths, activation):
    # narrowing (n < m), widening (n > m), width 1 and dead ReLU layers (a = 0)
    net = Network(widths, activation=activation, init="orthogonal", gain=1.3)
    assert_agree(_batches(net, "exact", 8000, 10, 1), _batches(net, "direct", 8000, 10, 2),
                 COLUMNS)


def test_many_inputs_per_network_go_to_the_weight_drawing_engines():
    net = mlp(64, 2)
    assert fastvar.simulate(net, 16, inputs_per_network=16).engine == "exact"
    assert fastvar.simulate(net, 17 * 2, inputs_per_network=17).engine != "exact"
    with pytest.raises(ValueError, match="inputs_per_network=17 is above 16.*can: numpy"):
        fastvar.simulate(net, 17, inputs_per_network=17, engine="exact")


def test_biases_that_swamp_the_weights_leave_the_exact_engine():
    # sigma_w^2 = 1e-20 under bias_std 1: the backward step's cancellation put g 10-20 SE low
    net = fastvar.mlp(8, 4, init=1e-20, bias_std=1.0)
    with pytest.raises(ValueError, match="loses its digits"):
        fastvar.simulate(net, 40, engine="exact")
    res = fastvar.simulate(net, 2000, seed=1)
    assert res.engine == "direct"
    assert (np.abs(res.g_mean - res.g_theory) < 5 * res.g_mean_se).all()
    assert fastvar.simulate(net, 40, gradients=False).engine == "exact"  # forward is exact
    assert fastvar.simulate(fastvar.mlp(8, 4, bias_std=1.0), 40).engine == "exact"


def test_serial_kernel_matches_parallel_bitwise():
    # one block or one thread runs without the thread pool: the same stats, bit for bit
    plan, _ = fastvar.api.plan(mlp(8, 3, bias_std=0.3), 600, seed=5, engine="exact",
                               inputs_per_network=2)
    args = kernel_args(plan)
    assert plan.blocks >= 2
    parallel = kernel.run_blocks(args, 1, plan.blocks - 1)
    serial = kernel.run_blocks_serial(args, 1, plan.blocks - 1)
    assert parallel.shape == serial.shape and parallel[0, 0, 0, 0] > 0
    np.testing.assert_array_equal(serial, parallel)
