"""Plots of Results, headless (Agg)."""
import sys

import matplotlib
import numpy as np
import pytest

import fastvar
from fastvar.cli import main

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NET = fastvar.mlp(8, 4, activation="tanh", init="xavier")


@pytest.fixture(scope="module")
def results():
    return [fastvar.simulate(NET, 200, seed=1, engine="numpy"),
            fastvar.simulate(fastvar.mlp(8, 4, activation="relu", init="he"), 200, seed=2,
                             engine="numpy", gradients=False)]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_one_panel_per_quantity_with_theory_lines_and_se_bands(results):
    res = results[0]
    axes = res.plot()
    assert len(axes) == 2
    for axis, (mean, se, theory) in zip(axes, [("q_mean", "q_mean_se", "q_theory"),
                                               ("g_mean", "g_mean_se", "g_theory")]):
        assert axis.get_yscale() == "log" and axis.get_xlabel() and axis.get_ylabel()
        dots, line = axis.get_lines()
        np.testing.assert_array_equal(dots.get_ydata(), res[mean])
        np.testing.assert_array_equal(line.get_ydata(), res[theory])
        band = axis.collections[0].get_paths()[0].vertices[:, 1]
        assert band.min() == pytest.approx((res[mean] - res[se]).min())
        assert band.max() == pytest.approx((res[mean] + res[se]).max())
        texts = [t.get_text() for t in axis.get_legend().get_texts()]
        assert texts[0] == "tanh, xavier, n=8" and any("theory" in t for t in texts)


def test_many_results_on_one_axes_with_labels(results):
    fig, ax = plt.subplots()
    axes = fastvar.plot(results, labels=["A", "B"], ax=ax)
    assert len(axes) == 2 and axes[0] is axes[1] is ax
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    # B was run without gradients: no g entry for it
    assert texts[:3] == ["q: A", "q: B", "g: A"]


def test_gradients_off_leaves_out_the_g_panel(results):
    assert len(fastvar.plot(results[1])) == 1
    with pytest.raises(ValueError, match="gradients=True"):
        fastvar.plot(results[1], quantities=["g"])


def test_bad_arguments_are_clear_errors(results):
    with pytest.raises(ValueError, match="2 strings"):
        fastvar.plot(results, labels=["only one"])
    with pytest.raises(ValueError, match="quantities"):
        fastvar.plot(results, quantities=["z"])
    with pytest.raises(TypeError, match="Result"):
        fastvar.plot([1, 2])
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="one per quantity"):
        fastvar.plot(results[0], ax=axes)


def test_missing_matplotlib_says_how_to_install(results, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'fastvar\[plot\]'"):
        results[0].plot()


def test_cli_simulate_writes_a_png(tmp_path, capsys):
    path = tmp_path / "q.png"
    assert main(["simulate", "--width", "6", "--depth", "3", "--trials", "100", "--engine", "numpy",
                 "--plot", str(path)]) == 0
    assert "q_theory" in capsys.readouterr().out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _plotted_values(axis) -> np.ndarray:
    """Every finite positive y drawn on a log Axes as a line or markers."""
    ys = [np.asarray(line.get_ydata(), dtype=float) for line in axis.get_lines()]
    ys = np.concatenate(ys)
    return ys[np.isfinite(ys) & (ys > 0)]


def test_one_axes_for_q_and_g_fits_them_both():
    # sigma_w^2 = 4 with ReLU doubles q at every layer and g towards the input: q (drawn
    # first) reaches 4 x 2^7, g only 2^7, so a range reset by g clips q
    res = fastvar.simulate(fastvar.mlp(8, 8, activation="relu", init=4.0), 200, seed=1,
                           engine="numpy")
    _, axis = plt.subplots()
    fastvar.plot(res, ax=axis)
    low, high = axis.get_ylim()
    values = _plotted_values(axis)
    assert values.max() > 100 * values.min()
    assert low <= values.min() and values.max() <= high


def test_log_axes_label_every_decade_alike():
    # ReLU with Xavier halves q at every layer: 2^-29 over 30 layers, nine decades
    res = fastvar.simulate(fastvar.mlp(8, 30, activation="relu", init="xavier"), 100, seed=1,
                           engine="numpy", gradients=False)
    axis = fastvar.plot(res)[0]
    axis.figure.canvas.draw()
    low, high = axis.get_ylim()
    labelled = {round(np.log10(t.get_loc())) for t in axis.yaxis.get_major_ticks()
                if t.label1.get_visible() and t.label1.get_text()
                and low <= t.get_loc() <= high}
    decades = set(range(int(np.ceil(np.log10(low))), int(np.floor(np.log10(high))) + 1))
    assert len(decades) >= 8
    assert labelled == decades
    texts = [t.label1.get_text() for t in axis.yaxis.get_major_ticks()
             if low <= t.get_loc() <= high]
    assert all(text.startswith("$\\mathdefault{10^{") for text in texts), texts


def test_a_sweep_heatmap_keeps_sigma_b2_at_or_above_0():
    sweep = fastvar.sweep({"init": [0.8, 2.0], "bias_std": [0.0, 0.3]}, 20, seed=3, width=8,
                          depth=4, activation="tanh", engine="numpy")
    axis = sweep.plot("init", "bias_std", value="log_q_ratio")
    low, high = axis.get_ylim()
    assert low >= 0 and high >= 0.3 ** 2
