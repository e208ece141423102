"""Files fastvar wrote and someone edited since are refused, not loaded as if fastvar had
computed them (issue 18 item 4), and fastvar.load refuses what is not a path or not JSON it
can parse with one clear error (item 8).

Result and Sweep files carry a checksum of their content; a Sweep's metadata (grid,
configurations, trials, seeds, networks) must also agree with one another, which is checked
for files written before checksums existed too. ``verify=False`` loads such a file flagged.
"""
import json
import re

import numpy as np
import pytest

import fastvar
from fastvar import Result, Sweep

NET = fastvar.mlp(4, 3, activation="tanh", init="xavier", bias_std=0.1)
# a sweep of input pairs, two grid keys: its seeds depend on network, pairs and c0
GRID = {"init": [1.0, 2.0], "activation": ["tanh", "relu"]}
FIXED = dict(width=3, depth=2, correlation=0.3)
EDITED = "edited or damaged after fastvar wrote it"


@pytest.fixture(scope="module")
def res():
    return fastvar.simulate(NET, 200, seed=4, engine="numpy")


@pytest.fixture(scope="module")
def swept():
    return fastvar.sweep(GRID, 20, seed=7, engine="numpy", **FIXED)


def _write(tmp_path, data, name="f.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def _file(obj):
    """The document of ``obj.to_json()``, as a reader of the file sees it."""
    return json.loads(obj.to_json())


# ---------------------------------------------------------------- results

def _edit_stats(data):
    data["stats"][0][0][1] += 1.0  # the mean of z at layer 1: not a count, so no check sees it


def _edit_activation(data):
    data["network"]["activation"] = "relu"


def _edit_input_q0(data):
    data["input_q0"] = 4.0


def _edit_widths(data):
    data["network"]["widths"] = [4, 4, 7, 4]


@pytest.mark.parametrize("edit", [_edit_stats, _edit_activation, _edit_input_q0, _edit_widths])
def test_edited_result_file_is_refused(res, tmp_path, edit):
    data = _file(res)
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=f"{EDITED}.*checksum does not match.*verify=False"):
        fastvar.load(path)
    with pytest.raises(ValueError, match=EDITED):
        Result.from_dict(data)


def test_old_result_file_with_edited_widths_is_refused(res, tmp_path):
    # a file without a checksum (as written before them): its width column restates widths
    data = res.to_dict()
    assert "checksum" not in data
    _edit_widths(data)
    with pytest.raises(ValueError, match=r"width column is \[4, 4, 4\] but its network has "
                                         r"widths \[4, 7, 4\]"):
        fastvar.load(_write(tmp_path, data))


def test_unverified_result_loads_flagged_and_stays_flagged(res, tmp_path):
    data = _file(res)
    _edit_stats(data)
    path = _write(tmp_path, data)
    flagged = fastvar.load(path, verify=False)
    assert isinstance(flagged, Result) and not flagged.verified and res.verified
    assert "checksum does not match" in flagged.unverified
    assert flagged.stats[0, 0, 1] == res.stats[0, 0, 1] + 1.0  # the edited numbers, as asked
    assert any(w.startswith("unverified:") for w in flagged.warnings)
    assert "warning: unverified:" in flagged.table()
    # written again, the flag is kept: the new checksum matches, the flag still says why
    again = fastvar.load(_write(tmp_path, _file(flagged), "again.json"))
    assert again.unverified == flagged.unverified
    assert again.to_json() == flagged.to_json()
    with pytest.raises(TypeError, match="verify must be True or False"):
        fastvar.load(path, verify="no")


def test_result_file_round_trips_bitwise_with_its_checksum(res, tmp_path):
    text = res.to_json()
    assert list(json.loads(text))[:2] == ["format", "checksum"]
    res.to_json(tmp_path / "r.json")
    back = fastvar.load(tmp_path / "r.json")
    assert back.verified and back.to_json() == text
    assert Result.from_dict(json.loads(text)).to_json() == text


# ----------------------------------------------------------------- sweeps

def _refused(tmp_path, data, match):
    """``data`` is refused with and without its checksum (the metadata check alone),
    and loads flagged with verify=False."""
    for doc in (data, {k: v for k, v in data.items() if k != "checksum"}):
        path = _write(tmp_path, doc)
        with pytest.raises(ValueError, match=f"{EDITED}.*{re.escape(match)}"):
            fastvar.load(path)
        flagged = fastvar.load(path, verify=False)
        assert not flagged.verified and match in flagged.unverified
        assert all(not r.verified for r in flagged.results)
        assert "warning: unverified" in repr(flagged)


def test_sweep_with_swapped_configs_is_refused(swept, tmp_path):
    data = _file(swept)
    data["configs"][0], data["configs"][1] = data["configs"][1], data["configs"][0]
    _refused(tmp_path, data, "are not its grid's 4 in order: configuration 0")


def test_sweep_whose_grid_disagrees_with_its_configs_is_refused(swept, tmp_path):
    data = _file(swept)
    data["grid"]["init"] = [1.0, 3.0]
    _refused(tmp_path, data, "configuration 2 is")


def test_sweep_with_edited_trials_is_refused(swept, tmp_path):
    data = _file(swept)
    data["trials"] = 999
    _refused(tmp_path, data, "a result of 20 trials, but the sweep's trials are 999")


def test_sweep_with_edited_seeds_is_refused(swept, tmp_path):
    data = _file(swept)
    data["seeds"][1] += 1
    _refused(tmp_path, data, f"has the seed {swept.seeds[1] + 1}, but its result ran with seed")
    # the seed changed in both places: the sweep's seed and the configuration give another
    data = _file(swept)
    data["seeds"][1] += 1
    data["results"][1]["seed"] += 1
    _refused(tmp_path, data, "but the sweep's seed 7 gives it")
    data = _file(swept)
    data["seed"] = 8
    _refused(tmp_path, data, "but the sweep's seed 8 gives it")


def test_sweep_whose_result_is_of_another_network_is_refused(swept, tmp_path):
    data = _file(swept)
    data["results"][0]["network"]["bias_std"] = 0.5
    _refused(tmp_path, data, "makes a network of bias_std 0.0, but its result's network has 0.5")
    data = _file(swept)
    data["fixed"]["width"] = 4
    _refused(tmp_path, data, "makes a network of widths [4, 4, 4], but its result's network "
                             "has [3, 3, 3] (and 3 other configurations disagree")
    data = _file(swept)
    data["fixed"]["correlation"] = 0.5
    _refused(tmp_path, data, "makes correlation 0.5, but its result has 0.3")


def test_edited_sweep_result_is_refused(swept, tmp_path):
    data = _file(swept)
    data["results"][2]["stats"][0][0][1] += 1.0
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=f"{EDITED}: its checksum does not match"):
        fastvar.load(path)
    flagged = fastvar.load(path, verify=False)
    assert not flagged.verified and "warning: unverified" in repr(flagged)
    assert not flagged.results[2].verified
    # written again, it stays flagged and its text is stable
    again = fastvar.load(_write(tmp_path, _file(flagged), "again.json"))
    assert not again.verified and again.to_json() == flagged.to_json()


def test_sweep_files_round_trip_and_sound_ones_load(swept, tmp_path):
    text = swept.to_json()
    assert list(json.loads(text))[:2] == ["format", "checksum"]
    back = fastvar.load(_write(tmp_path, json.loads(text)))
    assert back.verified and all(r.verified for r in back.results)
    assert back.to_json() == text and Sweep.from_dict(json.loads(text)).to_json() == text
    # an interrupted sweep: the configurations not run follow the finished ones
    partial = Sweep(swept.grid, swept.fixed, swept.trials, swept.seed, swept.configs[:1],
                    swept.seeds[:1], swept.results[:1], pending=swept.configs[1:])
    assert fastvar.load(_write(tmp_path, _file(partial))).to_json() == partial.to_json()
    # options in the grid, and a data set (whose rows the file does not hold)
    other = fastvar.sweep({"inputs_per_network": [1, 2], "gradients": [True, False]}, 20,
                          width=3, depth=2, engine="numpy")
    assert fastvar.load(_write(tmp_path, _file(other))).verified
    data = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    for inputs, grid in ((data, {"correlation": [None, "rows"]}), (data[0], {"init": [1, 2]})):
        rows = fastvar.sweep(grid, 20, width=3, depth=2, engine="numpy", inputs=inputs)
        assert fastvar.load(_write(tmp_path, _file(rows))).verified


# ------------------------------------------------------------- load itself

# an int that is surely no open file descriptor: before the fix, open() took an int as
# one, and a small one (5, True) closed a descriptor of the test runner's on the way out
@pytest.mark.parametrize("path", [987_654, 3.5, None, ["r.json"]])
def test_load_refuses_what_is_not_a_path(path):
    with pytest.raises(TypeError, match="takes the path of a file"):
        fastvar.load(path)


def test_load_refuses_an_open_file(res, tmp_path):
    res.to_json(tmp_path / "r.json")
    with open(tmp_path / "r.json") as fh, pytest.raises(TypeError, match="give the file's path"):
        fastvar.load(fh)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a": ' * 100_000])
def test_deeply_nested_json_is_one_clear_error(tmp_path, text):
    path = tmp_path / "deep.json"
    path.write_text(text)
    with pytest.raises(ValueError, match="nests deeper than Python's parser can follow"):
        fastvar.load(path)


def test_a_file_whose_checksum_key_was_removed_is_refused(tmp_path):
    # deleting "checksum" got an edited file past load(), reported as verified
    res = fastvar.simulate(fastvar.mlp(4, 2), 40, engine="numpy")
    data = json.loads(res.to_json())
    del data["checksum"]
    data["stats"][0][0][2] *= 3
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="no checksum"):
        fastvar.load(path)
    assert not fastvar.load(path, verify=False).verified


def test_a_binary_file_is_not_json(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ValueError, match="not JSON"):
        fastvar.load(path)
