"""Output files: paths checked before any work, atomic or written-through writes, strict JSON
that round-trips, and dicts validated on the way back in."""
import json
import math
import os
import stat
import subprocess
import sys
import threading

import matplotlib
import numpy as np
import pytest

import fastvar
from fastvar import Moments, Result
from fastvar.cli import main

matplotlib.use("Agg")

NET = fastvar.mlp(4, 2, activation="tanh", init="xavier")
SMALL = ["simulate", "--width", "4", "--depth", "2", "--trials", "20", "--engine", "numpy"]
needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")


@pytest.fixture(scope="module")
def res():
    return fastvar.simulate(NET, 200, seed=4, engine="numpy")


@pytest.fixture
def no_run(monkeypatch):
    """Any simulation or walk-through fails the test: outputs must be refused before it."""
    def refuse(*args, **kwargs):
        raise AssertionError("the run started before the output paths were checked")

    monkeypatch.setattr(fastvar.api, "simulate", refuse)
    monkeypatch.setattr(fastvar.explain, "walkthrough", refuse)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


# item 7: every output path is checked before any work

@pytest.mark.parametrize("option", ["--json", "--csv", "--plot"])
def test_empty_output_path_is_refused_before_the_run(capsys, no_run, option):
    assert main(SMALL + [option, ""]) == 2
    assert f"{option} is empty" in _one_line_error(capsys)


@pytest.mark.parametrize("name", ["existing", "existing/", "missing/"])
@pytest.mark.parametrize("option", ["--json", "--csv"])
def test_folder_as_output_is_refused_before_the_run(capsys, tmp_path, no_run, option, name):
    (tmp_path / "existing").mkdir()
    assert main(SMALL + [option, f"{tmp_path}{os.sep}{name}"]) == 2
    assert "folder; add a file name" in _one_line_error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]
    assert list((tmp_path / "existing").iterdir()) == []


def test_explain_plot_path_is_checked_before_the_walkthrough(capsys, tmp_path, no_run):
    assert main(["explain", "--plot", str(tmp_path / "missing" / "x.png")]) == 2
    assert "does not exist" in _one_line_error(capsys)
    assert main(["explain", "--plot", str(tmp_path / "x.notanimage")]) == 2
    assert "name it .png" in _one_line_error(capsys)


def test_read_only_and_duplicate_outputs_are_refused_before_the_run(capsys, tmp_path, no_run):
    ro = tmp_path / "ro.json"
    ro.write_text("keep")
    ro.chmod(0o444)
    assert main(SMALL + ["--json", str(ro)]) == 2
    assert "read-only" in _one_line_error(capsys)
    same = str(tmp_path / "r.out")
    assert main(SMALL + ["--json", same, "--csv", same]) == 2
    assert "name the same file" in _one_line_error(capsys)
    assert main(SMALL + ["--csv", "-"]) == 2
    assert "only --json -" in _one_line_error(capsys)
    assert ro.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["ro.json"]


def test_python_api_checks_the_path_before_writing(res, tmp_path):
    with pytest.raises(IsADirectoryError, match="it is a folder"):
        res.to_json(tmp_path)
    with pytest.raises(IsADirectoryError, match="names a folder"):
        res.to_csv(f"{tmp_path}{os.sep}")
    with pytest.raises(ValueError, match="empty"):
        res.to_json("")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        fastvar.plotting.save(res, tmp_path / "missing" / "q.png")
    assert list(tmp_path.iterdir()) == []


# item 10: write through what is not a regular file, keep modes, refuse read-only files

def test_symlink_is_followed_and_its_target_replaced(res, tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target.name)
    res.to_json(link)
    assert link.is_symlink() and os.readlink(link) == target.name
    assert json.loads(target.read_text())["seed"] == 4
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to("made.json")
    res.to_csv(dangling)
    assert dangling.is_symlink() and (tmp_path / "made.json").read_text().startswith("layer,")


def test_fifo_is_written_through(res, tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    res.to_json(fifo)
    reader.join(10)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert json.loads(got[0])["seed"] == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


@needs_proc
def test_own_descriptor_is_written_through_at_its_offset(res, tmp_path):
    path = tmp_path / "log.txt"
    with open(path, "a") as log:
        log.write("before\n")
        log.flush()
        inode = os.fstat(log.fileno()).st_ino
        res.to_csv(f"/proc/self/fd/{log.fileno()}")
        log.write("after\n")
    lines = path.read_text().splitlines()
    assert path.stat().st_ino == inode and [p.name for p in tmp_path.iterdir()] == ["log.txt"]
    assert lines[0] == "before" and lines[1].startswith("layer,") and lines[-1] == "after"
    assert len(lines) == 2 + 1 + NET.depth


@needs_proc
def test_cli_json_through_a_link_to_dev_stdout_appends_to_a_redirected_file(tmp_path):
    # a link of our own, not /dev/stdout itself: code that replaces links (as root)
    # then damages only tmp_path, never the machine's /dev/stdout
    link = tmp_path / "out.json"
    link.symlink_to("/dev/stdout")
    path = tmp_path / "log.txt"
    path.write_text("before\n")
    with open(path, "a") as log:
        subprocess.run([sys.executable, "-m", "fastvar", *SMALL, "--quiet", "--json", str(link)],
                       stdout=log, check=True)
    text = path.read_text()
    assert link.is_symlink() and text.startswith("before\n{") and "fastvar Result" in text
    json.loads(text[len("before\n"):text.index("fastvar Result")])


def test_existing_file_keeps_its_mode_and_read_only_is_refused(res, tmp_path):
    private = tmp_path / "private.csv"
    private.write_text("old")
    private.chmod(0o600)
    res.to_csv(private)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_text() != "old"
    ro = tmp_path / "ro.csv"
    ro.write_text("keep")
    ro.chmod(0o444)
    with pytest.raises(PermissionError, match="read-only"):
        res.to_csv(ro)
    assert ro.read_text() == "keep"


def test_failed_write_leaves_the_old_file_and_no_temporary(res, tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_text("old")

    def broken(src, dst):
        raise OSError("disk trouble")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk trouble"):
        res.to_json(path)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


# item 11: strict JSON; the stats round-trip bitwise, inf and NaN included

def _strict(text: str):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _round_trip_bitwise(res):
    json.dumps(res.to_dict(), allow_nan=False)
    again = Result.from_dict(_strict(res.to_json()))
    assert np.array_equal(again.stats, res.stats, equal_nan=True)
    numbers = ~np.isnan(res.stats)  # a NaN's sign and payload mean nothing and are not kept
    assert np.array_equal(np.signbit(again.stats[numbers]), np.signbit(res.stats[numbers]))
    for name in res.columns:
        np.testing.assert_array_equal(again[name], res[name])


def test_overflowed_result_is_strict_json_and_round_trips_bitwise():
    with np.errstate(all="ignore"):
        res = fastvar.simulate(fastvar.mlp(16, 10, activation="relu", init=1e100), 100, seed=2)
    assert not np.isfinite(res.stats).all() and not np.isfinite(res.q_mean).all()
    _round_trip_bitwise(res)
    stats = res.stats.copy()
    stats[0, 0, 1:4] = [np.inf, -np.inf, -0.0]  # mean, M2, M3: no counts among them
    meta = {k: getattr(res, k) for k in ("trials", "seed", "engine", "elapsed_s")}
    _round_trip_bitwise(Result(res.network, stats, **meta))


def test_overflowed_moments_are_strict_json_and_round_trip():
    m = Moments().update([1e200, -1e200])
    assert math.isinf(m.state[2]) and math.isnan(m.state[4])
    again = Moments.from_dict(_strict(json.dumps(m.to_dict())))
    assert np.array_equal(again.state, m.state, equal_nan=True)


def test_bool_and_int_columns_in_csv_and_json(tmp_path):
    res = fastvar.simulate(NET, 200, seed=4, engine="numpy")
    res._columns["flag"] = np.array([True, False])  # as the per-layer overflow flags
    res._columns["counted"] = np.array([0, 3], dtype=np.int64)
    res.to_csv(tmp_path / "r.csv")
    rows = [line.split(",") for line in (tmp_path / "r.csv").read_text().splitlines()]
    assert [row[-2:] for row in rows] == [["flag", "counted"], ["true", "0"], ["false", "3"]]
    columns = _strict(res.to_json())["columns"]
    assert columns["flag"] == [True, False] and columns["counted"] == [0, 3]
    assert isinstance(columns["counted"][1], int)


# item 12: damaged dicts raise a ValueError (or TypeError) naming the key

def _damaged(data, key, value):
    data = json.loads(json.dumps(data))
    if isinstance(key, tuple):
        data[key[0]][key[1]][key[2]][key[3]] = value
    else:
        data[key] = value
    return data


@pytest.mark.parametrize("key, value, error, name", [
    ("stats", [[[0.0] * 15] * 3] * 5, ValueError, "stats must have shape"),
    ("stats", [[[0.0] * 15] * 3, [[0.0] * 14] * 3], ValueError, "stats must have shape"),
    (("stats", 0, 0, 0), 2.5, ValueError, r"stats\[0, 0, 0\] is a count"),
    (("stats", 1, 2, 8), None, ValueError, r"stats\[1, 2, 8\] is a count"),
    (("stats", 0, 1, 14), -1.0, ValueError, r"stats\[0, 1, 14\] is a count"),
    (("stats", 0, 1, 3), "many", ValueError, r"stats\[0, 1, 3\]"),
    ("trials", -5, ValueError, "trials"),
    ("trials", "200", TypeError, "trials"),
    ("trials", 2.5, TypeError, "trials"),
    ("inputs_per_network", 3, ValueError, "inputs_per_network"),
    ("inputs_per_network", 0, ValueError, "inputs_per_network"),
    ("gradients", "false", TypeError, "gradients"),
    ("gradients", 0, TypeError, "gradients"),
    ("seed", -1, ValueError, "seed"),
    ("seed", 2 ** 64, ValueError, "seed"),
    ("engine", 7, TypeError, "engine"),
    ("elapsed_s", -1.0, ValueError, "elapsed_s"),
    ("elapsed_s", None, TypeError, "elapsed_s"),
    ("input_q0", -1.0, ValueError, "input_q0"),
    ("input_q0_rows", [1.0, -1.0], ValueError, "input_q0_rows"),
    ("input_q0_rows", "rows", ValueError, "input_q0_rows"),
    ("network", "mlp", ValueError, "network"),
    ("network", {"widths": [4]}, ValueError, "network"),
    ("network", {"widths": [4, 4], "depth": 3}, ValueError, "network"),
])
def test_damaged_result_dict_names_the_key(res, key, value, error, name):
    with pytest.raises(error, match=name):
        Result.from_dict(_damaged(res.to_dict(), key, value))


def test_result_dict_checks_that_still_accept_good_input(res):
    data = res.to_dict()
    with pytest.raises(TypeError, match="result dict"):
        Result.from_dict([data])
    with pytest.raises(ValueError, match="lacks the key 'seed'"):
        Result.from_dict({k: v for k, v in data.items() if k != "seed"})
    again = Result.from_dict({**data, "input_q0_rows": None, "columns": "ignored"})
    assert np.array_equal(again.stats, res.stats)


# every file carries a format version; files of earlier versions (no key for a Result,
# "fastvar sweep" for a Sweep) still load, those of unknown versions are refused

def test_result_files_carry_a_version_and_old_ones_load(res, tmp_path):
    data = res.to_dict()
    assert data["format"] == "fastvar.result/4"
    old = {k: v for k, v in data.items() if k != "format"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    again = fastvar.load(tmp_path / "old.json")
    assert isinstance(again, Result) and again.to_dict() == data


@pytest.mark.parametrize("found", ["fastvar.result/5", "banana", "fastvar sweep checkpoint", 7])
def test_unknown_format_is_refused_naming_it(res, tmp_path, found):
    data = {**res.to_dict(), "format": found}
    (tmp_path / "r.json").write_text(json.dumps(data))
    for read in (lambda: Result.from_dict(data), lambda: fastvar.load(tmp_path / "r.json")):
        with pytest.raises(ValueError, match=f"{found!r}.*reads.*'fastvar.result/4'"):
            read()


def test_sweep_files_carry_a_version_and_old_ones_load(tmp_path):
    swept = fastvar.sweep({"init": [1.0, 2.0]}, 20, width=3, depth=2, engine="numpy")
    data = swept.to_dict()
    assert data["format"] == "fastvar.sweep/2"
    (tmp_path / "old.json").write_text(json.dumps({**data, "format": "fastvar sweep"}))
    again = fastvar.load(tmp_path / "old.json")
    assert isinstance(again, fastvar.Sweep) and again.to_dict() == data
    with pytest.raises(ValueError, match="'fastvar.sweep/3'.*reads.*'fastvar.sweep/2'"):
        fastvar.Sweep.from_dict({**data, "format": "fastvar.sweep/3"})


def test_a_sweep_is_not_read_as_a_result(res):
    data = {**res.to_dict(), "format": "fastvar.sweep/2"}
    with pytest.raises(ValueError, match="not a result dict but a sweep"):
        Result.from_dict(data)
    with pytest.raises(ValueError, match="not a sweep dict but a result"):
        fastvar.Sweep.from_dict(res.to_dict())


def test_theory_is_computed_on_first_use_only(res, monkeypatch):
    import fastvar.results.columns as columns

    calls = []
    maps = columns.mean_field_maps
    monkeypatch.setattr(columns, "mean_field_maps",
                        lambda *args, **kwargs: calls.append(1) or maps(*args, **kwargs))
    again = Result.from_dict(res.to_dict())
    assert calls == [] and again.columns == res.columns
    assert again.warnings == res.warnings and calls == []
    for name in ("q_theory", "g_theory", "q_theory"):
        assert again[name].tobytes() == res[name].tobytes()
    assert calls == [1]


@pytest.mark.parametrize("key, value, error, name", [
    ("count", 2.5, ValueError, "count"),
    ("count", -1.0, ValueError, "count"),
    ("count", None, ValueError, "count"),
    ("count", "3", ValueError, "count"),
    ("count", True, TypeError, "count"),
    ("mean", None, ValueError, "mean"),
    ("M2", -1.0, ValueError, "M2"),
    ("M4", -1.0, ValueError, "M4"),
    ("M3", "x", ValueError, "M3"),
    ("M3", [1.0], TypeError, "M3"),
])
def test_damaged_moments_dict_names_the_key(key, value, error, name):
    data = {**Moments().update([1.0, 2.0, 4.0]).to_dict(), key: value}
    with pytest.raises(error, match=name):
        Moments.from_dict(data)
    with pytest.raises(TypeError, match="Moments dict"):
        Moments.from_dict([1, 2, 3, 4, 5])


def test_result_dict_metadata_must_agree_with_its_stats():
    pairs = fastvar.simulate(NET, 200, seed=4, correlation=0.3).to_dict()
    for key, value, match in [("trials", 10 ** 6, "networks"),
                              ("inputs_per_network", 1, "stats hold|pairs"),
                              ("input_correlation", None, "input pairs"),
                              ("engine", "foo", "none of")]:
        data = json.loads(json.dumps(pairs))
        data[key] = value
        with pytest.raises(ValueError, match=match):
            fastvar.Result.from_dict(data)
