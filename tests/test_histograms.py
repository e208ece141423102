"""Per-layer histograms: every engine agrees with the NumPy reference and with theory, the
counts are bitwise the same for any threads, resume or Dask worker, and they survive files.

Standard errors. Within one trial the units of a layer share ||a^{l-1}||, so their bin
indicators are correlated and a count is not binomial over all values. Over independent
trials (one input per network), though, the fraction f_t of trial t's values at or below
an edge lies in [0, 1] with mean F, so Var f_t <= F (1 - F) (Bhatia-Davis) and the
empirical CDF over N trials has SE <= sqrt(F (1 - F) / N): a bound that holds whatever the
correlation. Where the values are iid (layer 1 with a fixed input: z = W x, W fresh per
network), the counts are multinomial over all N n values and the binomial SE
sqrt(p (1 - p) / (N n)) is exact.
"""
import json
import math

import numba
import numpy as np
import pytest

import fastvar
from fastvar import Histogram
from fastvar.api import plan
from fastvar.checkpoint import Checkpoint
from fastvar.engines.numpy_engine import count_histogram
from fastvar.kernels.accumulators import HIST_SLOTS, add_histogram
from fastvar.results.histogram import edges_of
from fastvar.runs import Run
from .helpers import K

NET = fastvar.mlp(8, 3, activation="tanh", init=1.5, bias_std=0.3)
HE_RELU = dict(activation="relu", init="he")


def _cdf(res, layer, of):
    """Empirical CDF at the bin edges (the share of values below each edge), and the
    edges."""
    h = res.histogram(layer, of)
    below = h.below + np.concatenate([[0], np.cumsum(h.counts)])
    return below / h.total, h.edges


def _normal_cdf(x, var):
    return np.array([0.5 * (1.0 + math.erf(v / math.sqrt(2.0 * var))) for v in x])


def test_the_kernels_and_the_numpy_engine_bin_alike_on_the_edges_they_report():
    scale = 0.37
    edges = edges_of(scale)
    centres = 0.5 * (edges[1:] + edges[:-1])
    values = np.concatenate([centres, [edges[0] - 1e-9, edges[-1], 1e300, -1e300, 0.0,
                                       np.nan, np.inf, -np.inf],
                             np.random.default_rng(0).normal(0.0, 4.0, 5000)])
    factor = 190 / (2 * 9.5) / scale
    counts = np.zeros(HIST_SLOTS, dtype=np.int64)
    add_histogram(counts, values, factor, np.empty(values.size, dtype=np.int64))
    np.testing.assert_array_equal(counts, count_histogram(values, factor))
    one = np.zeros(HIST_SLOTS, dtype=np.int64)
    add_histogram(one, centres, factor, np.empty(190, dtype=np.int64))
    np.testing.assert_array_equal(one, [0] + [1] * 190 + [0])  # each centre in its own bin
    assert counts.sum() == values.size - 3  # NaN and +-inf are left out
    zero = np.zeros(HIST_SLOTS, dtype=np.int64)
    add_histogram(zero, np.zeros(3), factor, np.empty(3, dtype=np.int64))
    assert zero[96] == 3 and edges[95] == 0.0  # slot 96 is bin 95 = [0, width)


@pytest.mark.parametrize("engine", ["exact", "direct"])
def test_every_engine_agrees_with_the_numpy_engine(engine):
    trials = 3000
    ref = fastvar.simulate(NET, trials, seed=1, engine="numpy", histograms=True)
    res = fastvar.simulate(NET, trials, seed=2, engine=engine, histograms=True)
    for layer in range(1, NET.depth + 1):
        for of in ("z", "a", "delta"):
            assert res.histogram(layer, of).total == ref.histogram(layer, of).total \
                == trials * NET.widths[layer]
            np.testing.assert_array_equal(res.histogram(layer, of).edges,
                                          ref.histogram(layer, of).edges)
            f, _ = _cdf(res, layer, of)
            g, _ = _cdf(ref, layer, of)
            pooled = 0.5 * (f + g)
            se = np.sqrt(pooled * (1.0 - pooled) * 2.0 / trials)  # one per trial, both runs
            assert np.all(np.abs(f - g) <= K * se), (layer, of, np.max(np.abs(f - g) / se))
            # bin by bin, the same bound with F the bin's probability
            p, q = (r.histogram(layer, of).counts / r.histogram(layer, of).total
                    for r in (res, ref))
            both = 0.5 * (p + q)
            assert np.all(np.abs(p - q) <= K * np.sqrt(both * (1 - both) * 2.0 / trials))


def test_z_at_a_he_relu_layer_is_the_gaussian_of_the_theory():
    # layer 1 with a fixed input (q0 = 1): z = W x is iid N(0, 2) over units and networks,
    # so the counts are multinomial and the binomial SE exact
    net = fastvar.mlp(64, 3, **HE_RELU)
    trials = 2000
    res = fastvar.simulate(net, trials, seed=3, inputs=np.ones(64), histograms=True)
    h = res.histogram(1, "z")
    assert h.scale == pytest.approx(math.sqrt(2.0), rel=1e-12) and h.scale_from == "theory"
    p = np.diff(_normal_cdf(h.edges, 2.0))
    se = np.sqrt(p * (1 - p) / h.total)
    assert h.below == h.above == 0
    assert np.all(np.abs(h.counts / h.total - p) <= K * np.maximum(se, 1.0 / h.total))
    # a = relu(z): half the mass exactly at 0, the bin [0, width) of a's own bins
    a = res.histogram(1, "a")
    zero = int(np.searchsorted(a.edges, 0.0))
    assert a.edges[zero] == 0.0
    share = 0.5 + _normal_cdf([a.edges[zero + 1]], 2.0)[0] - 0.5
    assert abs(a.counts[zero] / a.total - share) <= K * math.sqrt(share * (1 - share) / a.total)
    assert a.counts[:zero].sum() == 0  # nothing negative
    # deeper, z is a finite-width mixture close to N(0, q^l): the per-trial bound
    deep = fastvar.simulate(fastvar.mlp(256, 3, **HE_RELU), 1000, seed=4, histograms=True)
    f, edges = _cdf(deep, 3, "z")
    truth = _normal_cdf(edges, deep.q_theory[2])
    assert np.all(np.abs(f - truth) <= K * np.sqrt(truth * (1 - truth) / 1000) + 1e-12)
    assert deep.histogram(3, "z").quantile(0.5) == pytest.approx(0.0, abs=0.15)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs 2 numba threads")
@pytest.mark.parametrize("engine", ["exact", "direct"])
def test_counts_are_bitwise_for_any_threads_and_change_nothing_else(engine):
    net = fastvar.mlp(16, 4, activation="gelu", bias_std=0.2)
    one = fastvar.simulate(net, 2048, seed=5, engine=engine, histograms=True, threads=1)
    two = fastvar.simulate(net, 2048, seed=5, engine=engine, histograms=True, threads=2)
    plain = fastvar.simulate(net, 2048, seed=5, engine=engine, threads=2)
    np.testing.assert_array_equal(one.histogram_counts, two.histogram_counts)
    np.testing.assert_array_equal(one.stats, plain.stats)
    np.testing.assert_array_equal(two.stats, plain.stats)
    assert plain.histogram_counts is None and "histograms" not in plain.to_dict()


def test_a_resumed_checkpoint_gives_bitwise_the_same_counts(tmp_path):
    net = fastvar.mlp(16, 3, activation="tanh")
    trials = 256 * 12
    whole = fastvar.simulate(net, trials, seed=6, engine="exact", histograms=True)
    request, engine = plan(net, trials, seed=6, engine="exact", histograms=True)
    run = Run(request, engine, checkpoint=Checkpoint(tmp_path / "ck", request, engine.name))
    run.add(0, engine.run(request, 0, 3))
    run.add(7, engine.run(request, 7, 2))  # out of order: kept as a range piece
    run.save(force=True)
    again = fastvar.simulate(net, trials, seed=6, engine="exact", histograms=True,
                             checkpoint=tmp_path / "ck")
    np.testing.assert_array_equal(again.histogram_counts, whole.histogram_counts)
    np.testing.assert_array_equal(again.stats, whole.stats)
    with pytest.raises(ValueError, match="another request.*histograms"):
        fastvar.simulate(net, trials, seed=6, engine="exact", checkpoint=tmp_path / "ck")


def test_counts_on_a_dask_cluster_are_bitwise_the_local_ones():
    distributed = pytest.importorskip("distributed")
    net = fastvar.mlp(16, 3)
    local = fastvar.simulate(net, 256 * 8, seed=7, engine="direct", histograms=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as client:
            remote = fastvar.simulate(net, 256 * 8, seed=7, engine="direct", histograms=True,
                                      client=client)
    np.testing.assert_array_equal(remote.histogram_counts, local.histogram_counts)
    np.testing.assert_array_equal(remote.stats, local.stats)


def test_totals_count_every_finite_value_and_non_finite_ones_are_left_out():
    net = fastvar.mlp(16, 10, activation="relu", init=1e100)  # overflows from layer 4 on
    with pytest.warns(fastvar.IncompleteStatisticsWarning):
        res = fastvar.simulate(net, 100, seed=2, histograms=True, engine="exact")
    for of in ("z", "a", "delta"):
        totals = [res.histogram(layer, of).total for layer in range(1, 11)]
        np.testing.assert_array_equal(np.array(totals) + res[f"nonfinite_{of}"], 100 * 16)
    assert res.nonfinite_z[-1] > 0
    # the theory overflows too: those layers' bins are in absolute units
    assert res.histogram(10, "z").scale_from == "unit" and res.histogram(10, "z").scale == 1.0
    assert res.histogram(1, "z").scale_from == "theory"
    back = fastvar.Result.from_dict(json.loads(res.to_json()))
    np.testing.assert_array_equal(back.histogram_scales, res.histogram_scales)


def test_files_and_xarray_keep_the_histograms(tmp_path):
    res = fastvar.simulate(NET, 200, seed=8, histograms=True, engine="exact")
    res.to_json(tmp_path / "r.json")
    back = fastvar.load(tmp_path / "r.json")
    np.testing.assert_array_equal(back.histogram_counts, res.histogram_counts)
    assert back.to_dict() == res.to_dict()
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["format"] == "fastvar.result/4" and set(data["histograms"]) == {
        "bins", "range", "z", "a", "delta"}
    # edited so that a histogram no longer holds the values its moments counted
    edited = res.to_dict()
    edited["histograms"]["a"]["counts"][1][100] += 1
    with pytest.raises(ValueError, match=r"histograms\['a'\] counts 1601 values at layer 2"):
        fastvar.Result.from_dict(edited)
    edited["histograms"]["a"]["counts"][1][100] = -1
    with pytest.raises(ValueError, match="whole numbers >= 0"):
        fastvar.Result.from_dict(edited)
    # a file of the previous format has none
    plain = fastvar.simulate(NET, 200, seed=8, engine="exact").to_dict()
    old = fastvar.Result.from_dict({**plain, "format": "fastvar.result/2"})
    assert old.histogram_counts is None
    ds = res.to_xarray()
    assert ds["hist_z"].dims == ("layer", "bin") and ds["hist_z"].shape == (3, 190)
    assert ds["hist_delta_edges"].shape == (3, 191)
    np.testing.assert_array_equal(ds["hist_a"].sel(layer=2), res.histogram(2, "a").counts)


@pytest.mark.filterwarnings("ignore::fastvar.IncompleteStatisticsWarning")  # 64 trials
def test_clear_errors():
    res = fastvar.simulate(NET, 64, seed=9, histograms=True, gradients=False, engine="exact")
    with pytest.raises(ValueError, match="gradients=False"):
        res.histogram(1, "delta")
    with pytest.raises(ValueError, match="one of 'z', 'a', 'delta'"):
        res.histogram(1, "q")
    for layer in (0, 4, True, 1.0):
        with pytest.raises(ValueError, match="from 1 to 3"):
            res.histogram(layer)
    with pytest.raises(ValueError, match="histograms=True"):
        fastvar.simulate(NET, 64, seed=9, engine="exact").histogram(1)
    with pytest.raises(TypeError, match="histograms must be True or False"):
        fastvar.simulate(NET, 64, histograms="yes")
    with pytest.raises(ValueError, match="2\\*\\*53"):
        plan(fastvar.mlp(4096, 2), 1 << 42, histograms=True)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\]"):
        res.histogram(1).quantile(1.5)


def test_the_histogram_class():
    h = Histogram([0.0, 1.0, 2.0, 3.0], [1, 2, 1], below=1, above=1, quantity="z", layer=2)
    assert h.total == 6
    assert np.sum(h.density() * np.diff(h.edges)) == pytest.approx(4 / 6)
    assert h.quantile(0.5) == pytest.approx(1.5)  # 3 of 6: half-way through the middle bin
    assert h.quantile(1 / 6) == 0.0  # the first value inside the bins
    assert np.isnan(h.quantile(0.1)) and np.isnan(h.quantile(0.95))  # below / above
    np.testing.assert_allclose(h.quantile([0.5, 0.75]), [1.5, 2.5])
    assert "total 6, below 1, above 1" in repr(h)
    with pytest.raises(ValueError, match="must match"):
        Histogram([0.0, 1.0], [1, 2])


@pytest.mark.filterwarnings("ignore::fastvar.IncompleteStatisticsWarning")  # width 3
def test_sweeps_and_the_command_line_take_the_option(capsys):
    swept = fastvar.sweep({"init": [1.0, 2.0]}, 20, width=3, depth=2, engine="numpy",
                          histograms=True)
    assert all(r.histogram(2, "a").total == 60 for r in swept.results)
    from fastvar.cli import main

    assert main(["simulate", "--width", "4", "--depth", "2", "--trials", "40", "--histograms",
                 "--json", "-", "--engine", "numpy"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert sum(data["histograms"]["z"]["counts"][0]) + data["histograms"]["z"]["below"][0] \
        + data["histograms"]["z"]["above"][0] == 160


@pytest.mark.filterwarnings("ignore::fastvar.IncompleteStatisticsWarning")  # tiny runs
def test_bench_times_the_exact_engine_with_histograms():
    import io

    from fastvar import bench

    out = io.StringIO()
    rows = bench.run_bench(cases=[bench.Case(8, 2)], engines=["exact"], seconds=0.01, repeats=2,
                           file=out)
    row = next(r for r in rows if r["engine"] == bench.HISTOGRAMS)
    assert row["vs_exact"]["min"] <= row["vs_exact"]["median"] <= row["vs_exact"]["max"]
    assert "with histograms:" in out.getvalue()


@pytest.mark.filterwarnings("ignore::fastvar.IncompleteStatisticsWarning")  # 64 trials
def test_plots_draw_each_layer_beside_the_infinite_width_law(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fastvar.plotting import save_histograms, theory_bins

    res = fastvar.simulate(fastvar.mlp(16, 4, activation="tanh", init=4.0), 400, seed=10,
                           histograms=True, engine="exact")
    axes = res.plot_histograms(of="a")
    assert len(axes) == 4
    for layer, axis in enumerate(axes, 1):
        h = res.histogram(layer, "a")
        measured, theory = (patch.get_data()[0] for patch in axis.patches)
        np.testing.assert_array_equal(measured, h.density())
        probs = theory * np.diff(h.edges)
        assert probs.sum() == pytest.approx(1.0, abs=1e-9)  # tanh stays inside the bins
        # saturated: the law piles up in the outermost bins, above its middle
        inside = np.flatnonzero(probs)
        assert probs[inside[0]] > 3 * probs[np.searchsorted(h.edges, 0.0)]
    z = theory_bins(res, 2, "z", res.histogram(2, "z").edges)
    assert z.sum() == pytest.approx(1.0, abs=1e-9)  # N(0, q) has no mass beyond 9.5 sd
    plt.close("all")
    save_histograms(res, tmp_path / "h.png", of="z", log=True)
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="histograms=True"):
        fastvar.simulate(NET, 64, seed=1, engine="exact").plot_histograms()


def test_explain_counts_every_product_and_sum_in_histograms(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from fastvar.explain import _product_tail, save_histograms, tail_share, terms

    n, trials = 30, 200
    t = terms(fastvar.mlp(n, 1, **HE_RELU), 1, trials, seed=3)
    products, sums = t.histograms["products"], t.histograms["sums"]
    assert products.total == trials * n * n and sums.total == trials * n
    assert products.scale == pytest.approx(math.sqrt(2 / n)) and sums.scale == pytest.approx(
        math.sqrt(2.0))
    # the products of one input entry x_j share it: the (network, j) columns are independent,
    # so the share beyond 3 sd has SE <= sqrt(p (1 - p) / (trials n)) (see the module doc)
    p = _product_tail(3.0)
    assert abs(tail_share(products, 3.0) - p) <= K * math.sqrt(p * (1 - p) / (trials * n))
    assert tail_share(products, 5.0) > 100 * math.erfc(5 / math.sqrt(2))  # heavy tails
    assert products.total == products.below + products.counts.sum() + products.above
    with pytest.raises(ValueError, match="sds must be between"):
        tail_share(sums, 20.0)
    save_histograms({n: t}, tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0


def test_the_estimate_counts_the_histograms_memory_and_time():
    from fastvar.api import estimate

    net = fastvar.mlp(64, 12)
    plain, counted = estimate(net, 10_000), estimate(net, 10_000, histograms=True)
    # at least the merged histogram rows: 12 layers x 36 rows x 16 floats
    assert counted.memory_bytes >= plain.memory_bytes + 12 * 36 * 16 * 8
    assert counted.seconds > plain.seconds
