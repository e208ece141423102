"""fastvar.terms and `fastvar explain`: the one-layer sums and the walk-through."""
import matplotlib
import numpy as np
import pytest

import fastvar
from fastvar.cli import main
from fastvar.explain import walkthrough

matplotlib.use("Agg")


def _batches(net, layer, trials, stat, seeds=16):
    """Mean and standard error of ``stat(terms)`` over independent seeds (independent batches)."""
    values = [stat(fastvar.terms(net, layer, trials, seed=s)) for s in range(seeds)]
    return np.mean(values), np.std(values, ddof=1) / np.sqrt(seeds)


@pytest.mark.parametrize("layer", [1, 2])
def test_sum_of_tiny_products_keeps_variance_n_var_w_e_x2(layer):
    n = 40
    net = fastvar.mlp(n, 2, activation="relu", init="he")
    # E[x^2] = 1 at layer 1; at layer 2, E[relu(z)^2] = E[q^1] / 2 = 1 exactly, at any width
    for stat, want in [(lambda t: t.weights.var(), 2 / n), (lambda t: t.products.var(), 2 / n),
                       (lambda t: t.inputs.var() + t.inputs.mean() ** 2, 1.0),
                       (lambda t: t.sums.var(), n * (2 / n) * 1.0)]:
        mean, se = _batches(net, layer, 100, stat)
        assert abs(mean - want) <= 5 * se, (mean, se, want)


def test_products_are_heavy_tailed_and_follow_the_weight_law():
    # excess kurtosis of w x: E[w^4] E[x^4] / (E[w^2] E[x^2])^2 - 3 = 3 * 3 - 3 = 6 (normal w),
    # 3 * 9/5 - 3 = 2.4 (uniform w, whose own excess kurtosis is -1.2)
    for dist, want_w, want_wx in [("normal", 0.0, 6.0), ("uniform", -1.2, 2.4)]:
        net = fastvar.mlp(30, 1, distribution=dist)
        for stat, want in [(lambda t: t.weights.kurtosis(), want_w),
                           (lambda t: t.products.kurtosis(), want_wx)]:
            mean, se = _batches(net, 1, 100, stat)
            assert abs(mean - want) <= 5 * se, (dist, mean, se, want)


def test_terms_is_reproducible_and_keeps_samples():
    net = fastvar.mlp(12, 3, activation="tanh", bias_std=0.1)
    a, b = fastvar.terms(net, 3, 50, seed=4), fastvar.terms(net, 3, 50, seed=4)
    np.testing.assert_array_equal(a.products.state, b.products.state)
    assert not np.array_equal(a.products.state, fastvar.terms(net, 3, 50, seed=5).products.state)
    assert a.sums.count == 50 * 12 and a.products.count == 50 * 144
    assert a.samples["sums"].shape == (600,) and a.samples["weights"].shape == (7200,)


def test_terms_rejects_bad_input():
    net = fastvar.mlp(4, 2)
    with pytest.raises(ValueError, match="layer"):
        fastvar.terms(net, layer=3)
    with pytest.raises(ValueError, match="trials"):
        fastvar.terms(net, trials=0)
    with pytest.raises(TypeError, match="Network"):
        fastvar.terms("relu")
    with pytest.raises(ValueError, match="4096"):
        fastvar.terms(fastvar.mlp(5000, 1))


def test_walkthrough_reports_measured_numbers_beside_theory():
    text, found = walkthrough(widths=(6, 50), depth=4, depth_width=16, trials=40, seed=1)
    assert sorted(found) == [6, 50]
    row = next(line.split() for line in text.splitlines() if line.split()[:1] == ["50"])
    assert row[2] == "0.2" and abs(float(row[6]) - 2.0) < 0.2  # sqrt(2/50) exactly; Var(z) near 2
    assert "relu, he" in text and "[2]" in text and "tanh, xavier" in text


def test_cli_explain_prints_and_draws(tmp_path, capsys):
    path = tmp_path / "h.png"
    assert main(["explain", "--width", "6", "--width", "20", "--depth", "3", "--depth-width", "8",
                 "--trials", "20", "--plot", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Var(z)" in out and "Why don't gradients vanish?" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["explain", "--width", "0"]) == 2


def test_each_warning_names_its_network():
    # the reported case: "layers 1-8: g is too heavy-tailed..." twice, for which of the four?
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        walkthrough(widths=(6,), depth=30, depth_width=100, trials=200, seed=0)
    said = [str(w.message) for w in caught
            if issubclass(w.category, fastvar.IncompleteStatisticsWarning)]
    assert said and all(s.startswith("network 'relu, xavier': layers") for s in said[:1]), said
    labels = ("relu, xavier", "relu, he", "tanh, xavier", "tanh, he")
    assert all(any(s.startswith(f"network '{label}': ") for label in labels) for s in said), said
