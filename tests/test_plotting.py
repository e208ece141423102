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
