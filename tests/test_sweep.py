"""Sweeps: stable seeds, bitwise results, tables, JSON, validation, checkpoints, fits, CLI."""
import json
import math
import os
import signal
import subprocess
import sys
import time

import matplotlib
import numpy as np
import pytest

import fastvar
from fastvar import fits, sweeps, theory
from fastvar.cli import main

matplotlib.use("Agg")

FIXED = dict(width=8, depth=4, activation="tanh", engine="numpy", correlation=0.5)
GRID = {"init": [0.8, 2.0], "bias_std": [0.0, 0.3]}


@pytest.fixture(scope="module")
def small():
    return fastvar.sweep(GRID, 40, seed=3, **FIXED)


def same(a, b):
    return np.array_equal(a.stats, b.stats, equal_nan=True)


def test_results_are_bitwise_simulate_with_the_reported_seed(small):
    assert len(small) == 4 and small.complete
    for point, seed, res in zip(small.configs, small.seeds, small.results):
        net = fastvar.mlp(8, 4, activation="tanh", init=point["init"], bias_std=point["bias_std"])
        assert same(res, fastvar.simulate(net, 40, seed=seed, engine="numpy", correlation=0.5))


def test_seeds_do_not_depend_on_grid_order_or_content(small):
    other = fastvar.sweep({"bias_std": [0.3, 0.1, 0.0], "init": [2.0]}, 40, seed=3, **FIXED)
    by_point = {(p["init"], p["bias_std"]): s for p, s in zip(small.configs, small.seeds)}
    for point, seed, res in zip(other.configs, other.seeds, other.results):
        key = (point["init"], point["bias_std"])
        if key in by_point:
            assert seed == by_point[key]
            assert same(res, small.results[list(by_point).index(key)])
    assert len(set(small.seeds)) == 4
    # a grid key with one value, or the same value fixed, or spelled differently: one seed
    moved = fastvar.sweep({"init": [2.0]}, 40, seed=3, bias_std=0, width=8, depth=4,
                          activation="tanh", engine="numpy", correlation=0.5)
    assert moved.seeds[0] == by_point[(2.0, 0.0)]
    assert fastvar.sweep({"init": [2.0]}, 40, seed=4, bias_std=0.0, **FIXED).seeds != moved.seeds


def test_tidy_pandas_and_xarray(small):
    df = small.to_pandas()
    assert df.shape[0] == 4 * 4
    assert list(df.columns[:4]) == ["init", "bias_std", "seed", "layer"]
    assert set(small.results[0].columns) <= set(df.columns)
    ds = small.to_xarray()
    assert dict(ds.sizes) == {"init": 2, "bias_std": 2, "layer": 4}
    assert ds["c_mean"].dims == ("init", "bias_std", "layer")
    assert ds["xi_c"].dims == ("init", "bias_std")
    assert ds["q_mean"].sel(init=2.0, bias_std=0.3).values.tolist() == \
        small.results[3].q_mean.tolist()


def test_json_round_trip_through_load(small, tmp_path):
    small.to_json(tmp_path / "s.json")
    back = fastvar.load(tmp_path / "s.json")
    assert isinstance(back, fastvar.Sweep)
    assert back.configs == small.configs and back.seeds == small.seeds
    assert all(same(a, b) for a, b in zip(back.results, small.results))
    small.results[0].to_json(tmp_path / "r.json")
    assert same(fastvar.load(tmp_path / "r.json"), small.results[0])
    data = small.to_dict()
    for key, bad, message in (("seeds", [1, 2, 3, -1], "seeds"), ("configs", [{}] * 4, "grid's"),
                              ("format", "x", "not a sweep")):
        with pytest.raises((ValueError, TypeError), match=message):
            fastvar.Sweep.from_dict({**data, key: bad})
    with pytest.raises(TypeError, match="seed must be an integer"):
        fastvar.sweep(GRID, 40, seed=1.5, **FIXED)
    small.to_csv(tmp_path / "s.csv")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].startswith("init,bias_std,seed,layer,") and len(lines) == 17


@pytest.mark.parametrize("grid, fixed, message", [
    ({"foo": [1]}, {}, "unknown keyword 'foo'"),
    ({"init": []}, {}, "is empty"),
    ({"init": [1.0]}, {"init": 2.0}, "both in the grid and fixed"),
    ({"init": "he"}, {}, "must be a list"),
    ({"init": [1.0, 1.0]}, {}, "twice"),
    ({"seed": [1]}, {}, "argument of sweep"),
    ({"widths": [[3, 3]]}, {}, "cannot be swept"),
    ({"init": [1.0, -1.0]}, {}, "configuration init=-1.0"),
    ({"correlation": [0.5, 2.0]}, {}, "correlation must be in"),
    ({"init": ["he", 1.5]}, {"gain": 2.0}, "gain applies"),
])
def test_bad_grids_fail_before_any_work(grid, fixed, message, monkeypatch):
    monkeypatch.setattr(sweeps, "simulate", lambda *a, **k: pytest.fail("work was done"))
    base = {k: v for k, v in FIXED.items() if k not in grid and k not in fixed}
    with pytest.raises((ValueError, TypeError), match=message):
        fastvar.sweep(grid, 40, **base, **fixed)


def test_a_client_that_is_no_client_is_refused_before_work():
    with pytest.raises(TypeError, match="Client"):
        fastvar.sweep({"init": [1.0]}, 40, client=object(), **FIXED)


def test_a_progress_that_is_no_bool_is_refused_before_work(monkeypatch):
    monkeypatch.setattr(sweeps, "simulate", lambda *a, **k: pytest.fail("work was done"))
    with pytest.raises(TypeError, match="progress must be True or False"):
        fastvar.sweep({"init": [1.0]}, 40, progress="x", **FIXED)


def test_ctrl_c_keeps_the_finished_configurations(monkeypatch, small):
    calls = []

    def interrupted(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return fastvar.simulate(*args, **kwargs)

    monkeypatch.setattr(sweeps, "simulate", interrupted)
    with pytest.raises(fastvar.SweepInterrupted) as info:
        fastvar.sweep(GRID, 40, seed=3, **FIXED)
    partial = info.value.partial
    assert isinstance(info.value, KeyboardInterrupt) and not partial.complete
    assert len(partial) == 2 and len(partial.pending) == 2
    assert all(same(a, b) for a, b in zip(partial.results, small.results))
    assert partial.to_xarray()["q_mean"].sel(init=2.0).isnull().all()


_CHILD = """
import sys, fastvar
fastvar.sweep({"init": [0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4, 2.7]}, 6000, width=64, depth=20,
              activation="tanh", engine="exact", checkpoint=sys.argv[1])
"""


def test_checkpoint_resumes_after_sigkill(tmp_path):
    folder = tmp_path / "ck"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(folder)])
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and child.poll() is None:
            if folder.is_dir() and len(list(folder.glob("*.bin"))) >= 2:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    finished = len(list(folder.glob("*.bin")))
    assert 1 <= finished < 8, "the child was not killed mid-sweep"
    grid, fixed = {"init": [0.6, 0.9, 1.2, 1.5, 1.8, 2.1, 2.4, 2.7]}, dict(
        width=64, depth=20, activation="tanh", engine="exact")
    ran = []
    real = sweeps.simulate

    def counting(*args, **kwargs):
        ran.append(1)
        return real(*args, **kwargs)

    sweeps.simulate = counting
    try:
        resumed = fastvar.sweep(grid, 6000, checkpoint=folder, **fixed)
    finally:
        sweeps.simulate = real
    assert len(ran) == 8 - finished and len(list(folder.glob("*.bin"))) == 8
    fresh = fastvar.sweep(grid, 6000, **fixed)
    assert all(same(a, b) for a, b in zip(resumed.results, fresh.results))


def test_fit_gives_nan_with_a_reason_when_too_few_layers():
    fit = fits.fit_depth_scale(np.array([0.5, 0.9, 0.99]), np.full(3, 1e-3), 1.0)
    assert math.isnan(fit.xi) and "need 4" in fit.note
    flat = 0.5 + 0.05 * np.ones(20) + 1e-4 * np.cos(np.arange(20))
    fit = fits.fit_depth_scale(flat, np.full(20, 1e-3), 0.5)
    assert math.isnan(fit.xi) and "no significant decay" in fit.note
    exact = 1.0 - 0.08 * 0.8 ** np.arange(1, 21)
    fit = fits.fit_depth_scale(exact, np.full(20, 1e-6), 1.0)
    assert fit.xi == pytest.approx(-1 / math.log(0.8), rel=1e-9)


@pytest.mark.parametrize("sigma_w2", [0.9, 4.5])  # ordered and chaotic, sigma_b^2 = 0.05
def test_measured_xi_c_matches_theory(sigma_w2):
    s = fastvar.sweep({"init": [sigma_w2]}, 4000, seed=1, width=1000, depth=30,
                      activation="tanh", bias_std=math.sqrt(0.05), correlation=0.6)
    fit = s.depth_scales()[0]
    xi, se, fitted_map = fit["xi_c"], fit["xi_c_se"], fit["xi_c_map"]
    assert fit["xi_c_theory"] == pytest.approx(theory.depth_scales("tanh", sigma_w2, 0.05)[1])
    # against the mean-field map fitted on the same layers: sampling error only (4 SE); the
    # map's own curvature over those layers is then the whole gap to the asymptotic theory
    assert abs(xi - fitted_map) < 4 * se, fit
    assert abs(fitted_map - fit["xi_c_theory"]) < 0.02 * fit["xi_c_theory"], fit


def test_plots_write_files(small, tmp_path):
    from fastvar.plotting import save_sweep

    save_sweep(small, tmp_path / "heat.png", "init", "bias_std", value="c")
    save_sweep(small, tmp_path / "lines.png", "init", value="xi_c", theory_points=4)
    assert (tmp_path / "heat.png").stat().st_size > 1000
    assert (tmp_path / "lines.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="not a grid key"):
        small.plot("width")


def test_cli_sweep_outputs(tmp_path, capsys):
    args = ["sweep", "--grid", "init=0.8:2:2", "--grid", "bias_std=0,0.3", "--width", "8",
            "--depth", "4", "--trials", "40", "--engine", "numpy", "--correlation", "0.5",
            "--seed", "3", "--plot-value", "c", "--csv", str(tmp_path / "s.csv"),
            "--json", str(tmp_path / "s.json"),
            "--plot", str(tmp_path / "s.png")]
    assert main(args) == 0
    assert "xi_c" in capsys.readouterr().out
    data = json.loads((tmp_path / "s.json").read_text())
    assert data["grid"] == {"init": [0.8, 2.0], "bias_std": [0.0, 0.3]}
    assert os.path.getsize(tmp_path / "s.png") > 1000


@pytest.mark.parametrize("grid, extra, message", [
    ("init=1:4:x", [], "n must be a whole number"),
    ("init", [], "KEY=a:b:n"),
    ("foo=1,2", [], "unknown key"),
    ("width=8.5,9", [], "whole numbers"),
    ("init=1,2", ["--init", "2"], "both set init"),
    ("correlation=0.5,2", [], "configuration correlation=2.0"),
    ("init=1,2", ["--plot", "/nonexistent-dir/p.png"], "does not exist"),
    ("init=1,2", ["--grid", "bias_std=0,0.1", "--grid", "correlation=0.1,0.5", "--plot",
                  "p.png"], "one or two"),
])
def test_cli_grid_errors_are_one_line(grid, extra, message, capsys):
    assert main(["sweep", "--grid", grid, "--width", "8", "--depth", "2"] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_grid_parsing():
    from fastvar.cli import parse_grid

    grid = parse_grid(["init=1:4:4", "activation=tanh,relu", "width=16,32"])
    assert grid == {"init": [1.0, 2.0, 3.0, 4.0], "activation": ["tanh", "relu"],
                    "width": [16, 32]}
    assert parse_grid(["init=he,2.5", "bias-std=0:0.6:3"]) == {
        "init": ["he", 2.5], "bias_std": [0.0, 0.3, 0.6]}


def test_residual_and_norm_can_be_swept_and_fixed():
    swept = fastvar.sweep({"residual": [0.5, 1.0]}, 40, width=8, depth=3, norm="rms")
    assert [r.network.residual for r in swept.results] == [0.5, 1.0]
    assert all(r.network.norm == "rms" for r in swept.results)


def test_an_edited_sweep_checkpoint_is_run_again(tmp_path):
    import warnings as _warnings

    kw = dict(width=8, depth=2, seed=1, checkpoint=str(tmp_path / "ck"))
    first = fastvar.sweep({"init": [1.0, 2.0]}, 40, **kw)
    name = sorted((tmp_path / "ck").glob("*.bin"))[0]
    blob = bytearray(name.read_bytes())
    blob[-3] ^= 0x10  # a stats entry, not what was run
    name.write_bytes(bytes(blob))
    with _warnings.catch_warnings(record=True) as seen:
        _warnings.simplefilter("always")
        again = fastvar.sweep({"init": [1.0, 2.0]}, 40, **kw)
    assert any("checksum" in str(w.message) for w in seen)
    for a, b in zip(first.results, again.results):
        np.testing.assert_array_equal(a.stats, b.stats)


def test_configuration_seeds_are_pinned(small):
    # absolute values: a refactor of the hashing must never move a configuration's seed
    assert small.seeds == [13485751621805382754, 11994565535521977347,
                           11453608835377241793, 13923151835148823399]
    data = np.random.default_rng(0).normal(size=(30, 6))
    other = fastvar.sweep({"init": [1.0, "he"]}, 40, seed=12345, width=8, depth=3,
                          input_width=6, inputs=data, engine="numpy")
    assert other.seeds == [9312424054125999526, 14297513633745980314]
    assert sweeps.configuration_seed(0, {"a": 1}) == 15333896430076420404
    assert sweeps.configuration_seed(2 ** 64 - 1, {"network": {"x": [1, 2.5]},
                                                   "inputs": "normal"}) == 6818979950047079833


def test_a_sweep_checkpoint_of_json_records_is_still_read(tmp_path, monkeypatch):
    # fastvar 0.1 kept each finished configuration as NAME.json: a record with its checksum
    import hashlib

    from fastvar.checkpoint import SweepCheckpoint

    kw = dict(width=8, depth=2, seed=1)
    first = fastvar.sweep({"init": [1.0, 2.0]}, 40, checkpoint=tmp_path / "new", **kw)
    (tmp_path / "old").mkdir()
    for piece in (tmp_path / "new").glob("*.bin"):
        res = SweepCheckpoint(tmp_path / "new").load(piece.stem)
        result = json.loads(json.dumps(res.to_dict(), allow_nan=False))
        text = json.dumps(result, sort_keys=True, separators=(",", ":"), allow_nan=False)
        record = {"format": "fastvar sweep checkpoint", "fingerprint": piece.stem,
                  "configuration": {}, "result": result,
                  "checksum": hashlib.sha256(text.encode()).hexdigest()}
        (tmp_path / "old" / f"{piece.stem}.json").write_text(json.dumps(record) + "\n")
    real = sweeps.simulate
    monkeypatch.setattr(sweeps, "simulate", lambda *a, **k: pytest.fail("work was done"))
    again = fastvar.sweep({"init": [1.0, 2.0]}, 40, checkpoint=tmp_path / "old", **kw)
    assert all(same(a, b) for a, b in zip(first.results, again.results))
    name = sorted((tmp_path / "old").glob("*.json"))[0]
    record = json.loads(name.read_text())
    record["result"]["stats"][0][0][1] = 123.0  # still valid JSON, but not what was run
    name.write_text(json.dumps(record))
    monkeypatch.setattr(sweeps, "simulate", real)
    with pytest.warns(RuntimeWarning, match="checksum"):
        again = fastvar.sweep({"init": [1.0, 2.0]}, 40, checkpoint=tmp_path / "old", **kw)
    assert all(same(a, b) for a, b in zip(first.results, again.results))
    assert not name.exists() and (tmp_path / "old" / f"{name.stem}.bin").exists()


@pytest.mark.parametrize("grid", [{"init": [1, 1.0]}, {"init": [np.float64(1), 1.0]},
                                  {"activation": ["tanh", "TANH"]},
                                  {"init": ["xavier", "glorot"]}])
def test_one_configuration_written_two_ways_is_refused(grid):
    # [1, 1.0] ran the same configuration twice while [np.float64(1), 1.0] was refused
    with pytest.raises(ValueError, match="same network and inputs|holds 1.0 twice"):
        fastvar.sweep(grid, 20, width=4, depth=2)


def test_a_sweep_of_years_is_refused_before_any_work(capsys):
    # --grid init=1:2:10000000 ran with no estimate for hours
    with pytest.raises(ValueError, match="this sweep of 200 configurations would take"):
        fastvar.sweep({"init": list(np.linspace(1, 2, 200))}, int(1e11), width=64, depth=20)
    est = fastvar.sweeps.sweep_estimate({"init": [1.0, 2.0]}, 1000, width=8, depth=3)
    one = fastvar.api.estimate(fastvar.mlp(8, 3, init=1.0), 1000)
    assert est.seconds == pytest.approx(2 * one.seconds, rel=1e-9)
    assert main(["sweep", "--grid", "init=1:2:200", "--width", "64", "--depth", "20",
                 "--trials", "1e11"]) == 2
    assert "would take" in capsys.readouterr().err


def test_a_grid_too_large_to_validate_is_refused_at_once(capsys, monkeypatch):
    # n values were made before any check: 1:2:1e9 filled 8 GB
    assert main(["sweep", "--grid", "init=1:2:1e9", "--width", "8", "--depth", "2"]) == 2
    assert "n must be at most 100000" in capsys.readouterr().err
    assert main(["sweep", "--grid", "init=1:2:1000", "--grid", "gain=1:2:1000", "--width",
                 "8", "--depth", "2"]) == 2
    assert "1000000 configurations" in capsys.readouterr().err
    # from Python, the size before any value is checked (ten million took minutes)
    from fastvar import sweeps

    monkeypatch.setattr(sweeps, "_scalar", lambda key, v: pytest.fail("checked a value"))
    with pytest.raises(ValueError, match="9999999 configurations"):
        fastvar.sweep({"gain": range(1, 10 ** 7)}, 30, width=8, depth=3)


def test_options_a_sweep_does_not_take_are_not_offered(capsys):
    # sweep --help listed --jacobian, which every sweep then refused
    with pytest.raises(SystemExit) as stop:  # argparse's own one-line error
        main(["sweep", "--jacobian", "--grid", "width=8,16", "--depth", "3"])
    assert stop.value.code == 2
    assert "unrecognized arguments: --jacobian" in capsys.readouterr().err


def test_sweep_names_its_files_and_the_configuration_of_each_warning(tmp_path, capsys):
    path = tmp_path / "s.json"
    assert main(["sweep", "--grid", "init=1:2:2", "--width", "8", "--depth", "3", "--trials",
                 "200", "--json", str(path)]) == 0
    err = capsys.readouterr().err
    assert f"fastvar: wrote {path}" in err
    warned = [line for line in err.splitlines() if line.startswith("fastvar: warning:")]
    assert all("configuration init=" in line for line in warned)
    assert main(["sweep", "--grid", "init=nan:2:3", "--width", "8", "--depth", "2"]) == 2
    assert "finite" in capsys.readouterr().err


# --- what a sweep prints (issue 21); small runs: their heavy-tail warnings are expected
QUIET = pytest.mark.filterwarnings("ignore::fastvar.IncompleteStatisticsWarning")


@QUIET
def test_sweep_table_without_pairs_has_no_correlation_columns_and_says_why_fits_are_nan():
    sw = fastvar.sweep({"init": [1.0, 2.0]}, 300, width=8, depth=6, engine="numpy")
    heads = sw.table().splitlines()[0].split()
    assert "c^L" not in heads and "xi_c" not in heads and heads[-2:] == ["xi_q", "theory"]
    lines = sw.table().splitlines()
    assert "n/a [1]" in lines[1]  # a NaN fit points to its reason under the table
    assert any(line.startswith("[1] xi_q: ") and "need 4" in line for line in lines), lines
    paired = fastvar.sweep({"init": [1.0]}, 300, width=8, depth=6, engine="numpy",
                           correlation=0.5, activation="tanh")
    assert {"c^L", "xi_c"} <= set(paired.table().splitlines()[0].split())


@QUIET
def test_a_reason_shared_by_columns_is_said_once():
    # a norm leaves xi_q, xi_c, and the map's and theory's xi_c NaN for one reason: one note
    # naming the four columns, not the same sentence for each
    sw = fastvar.sweep({"init": [1.0, 2.0]}, 40, width=8, depth=4, engine="numpy", norm="rms",
                       correlation=0.5)
    lines = sw.table().splitlines()
    assert [row.count("[1]") for row in lines[1:3]] == [4, 4], lines
    notes = " ".join(line.strip() for line in lines[3:])
    assert notes.startswith("[1] xi_q, xi_c, xi_c map, xi_c theory: residual streams and "
                            "norms"), notes
    assert notes.count("no fixed point") == 1 and "[2]" not in notes, notes


@QUIET
def test_print_sweep_is_a_summary_and_notebooks_get_html():
    sw = fastvar.sweep({"init": [1.0, 2.0]}, 300, width=8, depth=6, engine="numpy")
    text = str(sw).splitlines()
    assert text[0] == repr(sw) and text[1].startswith("fixed: width=8, depth=6")
    assert text[2].split()[:2] == ["init", "q^L"] and len(text) >= 5
    page = sw._repr_html_()
    assert page.count("<tr>") == 3 and "<th>xi_q</th>" in page and "[1] xi_q: " in page


@QUIET
def test_one_trial_is_singular_and_its_missing_errors_are_named(capsys):
    sw = fastvar.sweep({"init": [2.0]}, 1, width=8, depth=3, engine="numpy")
    assert "configuration of 1 trial," in repr(sw)
    assert "[1] xi_q: no standard errors (they need 2 or more networks)" in sw.table()
    table = repr(sw.results[0])
    assert "1 trial (1 per network)" in table and "(n/a: one network has no spread)" in table
    assert "±n/a" in table and "nan" not in table.split("layer  width")[1]
    assert main(["sweep", "--grid", "init=2", "--trials", "1", "--width", "8", "--depth", "3",
                 "--engine", "numpy"]) == 0
    assert "1 configuration of 1 trial," in capsys.readouterr().out
