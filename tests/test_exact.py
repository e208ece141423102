"""The exact engine (Gaussian conditioning) against the brute-force engines, in law.

Agreement is statistical: a column is compared through its mean and standard error over
independent batches (fixed seeds), |exact - brute| <= 5 * sqrt(se_exact^2 + se_brute^2);
joint laws of per-trial quantities use two-sample tests against a NumPy brute force.
"""
import sys
import types

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


def _batches(net, engine, trials, batches, seed, columns=COLUMNS, **kw):
    """Mean and SE over ``batches`` independent runs of every column in ``columns``."""
    runs = [fastvar.simulate(net, trials, seed=seed + b, engine=engine, **kw)
            for b in range(batches)]
    out = {}
    for col in columns:
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
        n, m = widths[layer], widths[layer - 1]
        if net.init == "orthogonal":  # gain x Haar: QR of a Gaussian matrix, signs fixed
            q, r = np.linalg.qr(rng.standard_normal((networks, max(n, m), min(n, m))))
            q *= np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
            w = net.gain * (q if n >= m else q.transpose(0, 2, 1))
        else:
            w = rng.standard_normal((networks, n, m)) * np.sqrt(net.weight_var[layer - 1])
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
    # orthogonal weights, narrowing (n < m) and widening (n > m), with and without a bias
    "orthogonal-tanh-bias": Network([6, 4, 7, 3, 5], activation="tanh", init="orthogonal",
                                    gain=1.4, bias_std=0.3),
    "orthogonal-relu-2-bias": Network([3, 2, 2, 3, 2], activation="relu", init="orthogonal",
                                      gain=1.4, bias_std=0.5),
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
                                 Network([3, 6, 6, 6], activation="tanh", init="lecun", gain=1.5),
                                 Network([5, 3, 6, 4, 4], activation="tanh", init="orthogonal",
                                         gain=1.3),
                                 Network([4, 2, 5, 2], activation="relu", init="orthogonal",
                                         gain=1.5, bias_std=0.4)],
                         ids=["relu-bias", "tanh", "orthogonal", "orthogonal-relu-bias"])
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

@pytest.mark.parametrize("init", ["lecun", "orthogonal"])
def test_bitwise_identical_for_threads_and_chunks(init):
    import numba
    net = mlp(16, 3, activation="tanh", init=init, bias_std=0.1)
    kw = dict(seed=9, engine="exact", inputs_per_network=2)
    one = fastvar.simulate(net, 4096, threads=1, **kw)
    many = fastvar.simulate(net, 4096, threads=numba.config.NUMBA_NUM_THREADS, **kw)
    np.testing.assert_array_equal(one.stats, many.stats)
    plan, engine = fastvar.api.plan(net, 4096, **kw)
    assert plan.blocks >= 4
    split = np.concatenate([engine.run(plan, 0, 1), engine.run(plan, 1, plan.blocks - 1)])
    np.testing.assert_array_equal(split, engine.run(plan, 0, plan.blocks))


def test_a_run_of_one_blocks_worth_is_cut_for_the_threads(monkeypatch):
    net = mlp(64, 4)
    small, engine = fastvar.api.plan(net, 100, seed=3)
    assert engine.name == "exact" and (small.blocks, small.networks_per_block) == (2, 50)
    # runs of more than one block keep their blocks (and streams), tiny ones stay whole
    assert fastvar.api.plan(net, 256, seed=3)[0].blocks == 1
    assert fastvar.api.plan(net, 20_000, seed=3)[0].networks_per_block == 256
    assert fastvar.api.plan(mlp(4, 2), 100, seed=3)[0].blocks == 1
    assert fastvar.api.plan(mlp(64, 16), 100, seed=3)[0].blocks == 8  # each >= 2^16 steps
    calls = []
    real = engine.run
    monkeypatch.setattr(engine, "run", lambda plan, first, count: calls.append((first, count))
                        or real(plan, first, count))
    one = fastvar.simulate(net, 100, seed=3, threads=1)
    two = fastvar.simulate(net, 100, seed=3, threads=2)
    np.testing.assert_array_equal(one.stats, two.stats)
    assert calls == [(0, 2), (0, 2)]  # the small run in one engine call
    # while other processes hold the cores it runs serially: the same stats
    import fastvar.engines.exact as exact_engine
    for busy in (True, False):
        monkeypatch.setattr(exact_engine, "cores_busy", lambda busy=busy: busy)
        chosen = engine._kernels(small)[0 if busy else 1]
        assert chosen is (exact_engine.kernel.run_blocks_serial if busy
                          else exact_engine.kernel.run_blocks)
        np.testing.assert_array_equal(fastvar.simulate(net, 100, seed=3, threads=2).stats,
                                      one.stats)


def test_the_load_is_read_at_most_every_recheck_interval(monkeypatch):
    # a small call in a loop must not pay a read of /proc/loadavg every time, nor keep an
    # answer for long: a machine that got busy is seen within RECHECK_SECONDS
    from fastvar import _threads
    reads = []
    real = _threads.os.pread
    monkeypatch.setattr(_threads.os, "pread", lambda *a: reads.append(1) or real(*a))
    clock = [100.0]  # a clock of our own: 101 calls within the interval on any machine
    monkeypatch.setattr(_threads, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(_threads.cores_busy, "last", (-np.inf, None))
    first = _threads.cores_busy()
    assert [_threads.cores_busy() for _ in range(100)] == [first] * 100
    if sys.platform.startswith("linux"):
        assert len(reads) == 1
        clock[0] += _threads.RECHECK_SECONDS
        _threads.cores_busy()
        assert len(reads) == 2


def test_orthogonal_resume_is_bitwise_the_whole_run(tmp_path):
    from fastvar.checkpoint import Checkpoint
    from fastvar.runs import Run
    net = Network([6, 8, 8, 8], activation="tanh", init="orthogonal", gain=1.2, bias_std=0.2,
                  residual=0.5, norm="rms")
    kw = dict(seed=4, engine="exact", inputs_per_network=2, histograms=True)
    whole = fastvar.simulate(net, 4096, threads=1, **kw)
    request, engine = fastvar.api.plan(net, 4096, **kw)
    assert request.blocks >= 4
    run = Run(request, engine, checkpoint=Checkpoint(tmp_path / "ck", request, engine.name))
    run.add(1, engine.run(request, 1, 2))
    run.save(force=True)
    again = fastvar.simulate(net, 4096, threads=2, checkpoint=tmp_path / "ck", **kw)
    np.testing.assert_array_equal(again.stats, whole.stats)
    np.testing.assert_array_equal(again.histogram_counts, whole.histogram_counts)


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


def test_auto_runs_orthogonal_weights_here_up_to_the_k_limit():
    net = mlp(8, 2, init="orthogonal", bias_std=0.1)
    assert fastvar.simulate(net, 10).engine == "exact"
    assert fastvar.simulate(net, 10, correlation=0.5).engine == "exact"
    assert fastvar.simulate(net, 16, inputs_per_network=8).engine == "exact"
    assert fastvar.simulate(net, 18, inputs_per_network=9).engine != "exact"
    with pytest.raises(ValueError, match="inputs_per_network=9 is above 8.*can: numpy"):
        fastvar.simulate(net, 9, inputs_per_network=9, engine="exact", gradients=False)
    # W a is kept apart from b, so a bias that swamps the weights costs no digits here
    assert fastvar.simulate(mlp(8, 2, init="orthogonal", gain=1e-10, bias_std=1.0), 10,
                            engine="exact").engine == "exact"


@pytest.mark.parametrize("widths, activation", [([6, 4, 9, 3, 5], "tanh"), ([2, 2, 3, 2], "relu"),
                                                ([1, 3, 1, 2], "linear"), ([16, 64, 32], "tanh")])
def test_orthogonal_gradients_match_direct(widths, activation):
    # narrowing (n < m), widening (n > m), width 1 and dead ReLU layers (a = 0)
    net = Network(widths, activation=activation, init="orthogonal", gain=1.3)
    assert_agree(_batches(net, "exact", 8000, 10, 1), _batches(net, "direct", 8000, 10, 2),
                 COLUMNS)


ORTHOGONAL = {
    # widths 2-64: narrowing (n < m), widening (n > m), equal (W^T D = A H exactly once A
    # has full rank), dead ReLU layers; one input with a bias, k inputs, input pairs, rows
    "bias-k1": (Network([6, 4, 9, 3, 5], activation="tanh", init="orthogonal", gain=1.3,
                        bias_std=0.3), dict()),
    "relu-2-bias-k1": (Network([3, 2, 2, 2], activation="relu", init="orthogonal", gain=1.4,
                               bias_std=0.2), dict()),
    "k2": (Network([6, 4, 9, 3, 5], activation="tanh", init="orthogonal", gain=1.3),
           dict(inputs_per_network=2)),
    "k3-bias": (Network([6, 4, 9, 3, 5], activation="tanh", init="orthogonal", gain=1.3,
                        bias_std=0.2), dict(inputs_per_network=3)),
    "k4-relu-2": (Network([3, 2, 2, 4, 3], activation="relu", init="orthogonal", gain=1.3,
                          bias_std=0.1), dict(inputs_per_network=4)),
    "k2-linear-square": (Network([2, 2, 2, 2], activation="linear", init="orthogonal"),
                         dict(inputs_per_network=2)),
    "k4-64": (Network([16, 64, 32, 8], activation="tanh", init="orthogonal", gain=1.3,
                      bias_std=0.2), dict(inputs_per_network=4)),
    "pair": (Network([5, 5, 5, 5], activation="tanh", init="orthogonal", gain=1.5,
                     bias_std=0.2), dict(correlation=0.4)),
    "rows": (Network([7, 6, 3, 6], activation="softplus", init="orthogonal", gain=1.2,
                     bias_std=0.2),
             dict(inputs=np.random.default_rng(0).standard_normal((5, 7)) * np.arange(1, 8),
                  inputs_per_network=2)),
    # residual streams and norms: the branch sees W through U = W phi(N(h)) alone
    "residual-rms-k2": (Network([6, 8, 8, 8], activation="tanh", init="orthogonal", gain=1.2,
                                bias_std=0.2, residual=0.5, norm="rms"),
                        dict(inputs_per_network=2)),
    "residual-layer-8": (fastvar.mlp(8, 4, input_width=3, activation="softplus",
                                     init="orthogonal", gain=1.4, bias_std=0.3,
                                        residual="1/sqrt(L)", norm="layer"), dict()),
    "residual-pair": (fastvar.mlp(5, 3, activation="gelu", init="orthogonal", residual=0.7),
                      dict(correlation=-0.3)),
}


@pytest.mark.parametrize("case", list(ORTHOGONAL))
def test_orthogonal_with_bias_and_many_inputs_match_direct(case):
    net, kw = ORTHOGONAL[case]
    cols = COLUMNS + (("c_mean",) if "correlation" in kw else ())
    exact = _batches(net, "exact", 12000, 10, 1, columns=cols, **kw)
    assert_agree(exact, _batches(net, "direct", 12000, 10, 2, columns=cols, **kw), cols)


def test_orthogonal_histograms_match_direct():
    # one input per network: a trial's share of values below an edge has SE <= sqrt(F (1 -
    # F) / N) whatever the units' correlation (see tests/test_histograms.py)
    net, trials = Network([5, 6, 3, 6], activation="tanh", init="orthogonal", gain=1.5,
                          bias_std=0.3), 4000
    exact = fastvar.simulate(net, trials, seed=1, engine="exact", histograms=True)
    direct = fastvar.simulate(net, trials, seed=2, engine="direct", histograms=True)
    for layer in range(1, net.depth + 1):
        for of in ("z", "a", "delta"):
            f, g = ((h.below + np.cumsum(h.counts)) / h.total
                    for h in (r.histogram(layer, of) for r in (exact, direct)))
            both = 0.5 * (f + g)
            assert np.all(np.abs(f - g) <= 5 * np.sqrt(both * (1 - both) * 2.0 / trials)), \
                (layer, of)


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
