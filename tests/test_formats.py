"""Files written by the code of issue 17's starting point still load, and still resume.

tests/data/ holds result and sweep JSON files and checkpoint folders that
tests/data/make_fixtures.py wrote with that code (main at 50fb6c0; do not regenerate them
to make a test pass: they stand for the files users already have). Loading one must give
the stats of running the same call now, and the same columns; resuming from a copy of a
checkpoint folder must give the uninterrupted result (to 1e-12, see ``_equal``; bitwise
within one version is tests/test_reproducibility.py's). Only the public API is used.
"""
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastvar
from fastvar import Network

DATA_DIR = Path(__file__).parent / "data"
TRIALS, SEED = 240, 11
ROWS = np.random.default_rng(23).uniform(-2.0, 2.0, (9, 4))

# file name -> (Network keywords, simulate keywords); each ran TRIALS trials at seed SEED
RESULTS = {
    "result_plain.json": (dict(widths=[4, 6, 5], activation="tanh", init="lecun", bias_std=0.2),
                          dict(engine="exact")),
    "result_pairs.json": (dict(widths=[4, 6, 5], activation="relu", init="he", bias_std=0.1),
                          dict(engine="direct", correlation=0.5)),
    "result_residual.json": (dict(widths=[4, 6, 6, 6], activation="gelu", init="he",
                                  residual=0.5, norm="layer"), dict(engine="exact")),
    "result_data.json": (dict(widths=[4, 6, 5], activation="silu", init="xavier"),
                         dict(engine="direct", inputs=ROWS, inputs_per_network=3)),
    "result_rows.json": (dict(widths=[4, 6, 5], activation="erf", init=1.5,
                              distribution="uniform", bias_std=0.3),
                         dict(engine="numpy", inputs=ROWS, correlation="rows")),
}

# sweep.json: fastvar.sweep(*SWEEP_ARGS, **SWEEP_KW)
SWEEP_ARGS = ({"init": [1.0, 2.0], "activation": ["tanh", "relu"]}, 64)
SWEEP_KW = dict(seed=3, engine="exact", width=5, depth=3, bias_std=0.1, correlation=0.3)

# folder -> (Network keywords, trials, simulate keywords) of a simulate(checkpoint=folder) run:
# "checkpoint_done" finished; "checkpoint_partial" holds blocks 0-2 merged and a piece of
# blocks 5-6 (as a run interrupted while Dask tasks finished out of order leaves it). Their
# request.json names fastvar 0.1.0: another version refuses them by design (its kernels
# may differ), so these tests also hold the version while the package is restructured.
CHECKPOINTS = {
    "checkpoint_done": (dict(widths=[4, 6, 5], activation="tanh", init="he", bias_std=0.1),
                        256 * 6, dict(seed=5, engine="direct")),
    "checkpoint_partial": (dict(widths=[4, 5, 5], activation="relu", init="he"),
                           2 * 256 * 8, dict(seed=6, engine="exact", correlation=0.2)),
}

# checkpoint_sweep: fastvar.sweep(SWEEP_CHECKPOINT_GRID, checkpoint=...) of the first of
# SWEEP_CHECKPOINT_FULL's configurations, as an interrupted sweep of the full grid leaves it
SWEEP_CHECKPOINT_GRID = {"init": [1.5]}
SWEEP_CHECKPOINT_FULL = {"init": [1.5, 0.5]}
SWEEP_CHECKPOINT_KW = dict(seed=9, engine="exact", width=4, depth=2, activation="tanh",
                           inputs_per_network=2)
SWEEP_CHECKPOINT_TRIALS = 128


def simulate(name):
    """The call that wrote result file ``name``, run now."""
    net_kw, sim_kw = RESULTS[name]
    return fastvar.simulate(Network(**net_kw), TRIALS, seed=SEED, **sim_kw)


def _equal(old, new, err_msg=""):
    """To 1e-12: the direct engine's vectorized sums and the numpy engine's BLAS kernels may
    round differently on another CPU than the one that wrote the fixtures, and issue 22
    changed the exact engine's rounding (dot products in eight partial sums, tanh with fused
    multiply-adds: 3e-14 at most on these files; bitwise before). The exact engine's bits
    on this machine are pinned in tests/test_known_answers.py."""
    np.testing.assert_allclose(old, new, rtol=1e-12, atol=0, equal_nan=True, err_msg=err_msg)


def _same_columns(old, new):
    assert old.columns == new.columns
    for column in new.columns:
        _equal(old[column], new[column], err_msg=column)


def _same_sweep(old, new):
    assert (old.grid, old.fixed, old.trials, old.seed) == (new.grid, new.fixed, new.trials,
                                                           new.seed)
    assert old.configs == new.configs and old.seeds == new.seeds and old.complete
    for a, b in zip(old.results, new.results, strict=True):
        _equal(a.stats, b.stats)
        _same_columns(a, b)


@pytest.mark.parametrize("name", list(RESULTS))
def test_old_result_files_load_as_todays_run(name):
    old = fastvar.load(DATA_DIR / name)
    new = simulate(name)
    assert isinstance(old, fastvar.Result)
    _equal(old.stats, new.stats)
    _same_columns(old, new)
    for key in ("trials", "seed", "engine", "inputs_per_network", "gradients", "input_q0",
                "input_correlation", "partial"):
        assert getattr(old, key) == getattr(new, key), key
    assert old.network.to_dict() == new.network.to_dict()
    # the columns the old code wrote into the file are today's columns (NaN written as None),
    # but for those added since, which are computed from the stats
    written = json.loads((DATA_DIR / name).read_text())["columns"]
    added = ("q_heavy_tails", "g_heavy_tails",  # issue 18
             "q_mean_theory", "z_kurt_theory", "q_var_theory", "g_var_theory")  # issue 19
    assert list(written) == [column for column in new.columns if column not in added]
    for column, values in written.items():
        values = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        _equal(values, new[column], err_msg=column)


def test_old_sweep_file_loads_as_todays_sweep():
    old = fastvar.load(DATA_DIR / "sweep.json")
    assert isinstance(old, fastvar.Sweep)
    _same_sweep(old, fastvar.sweep(*SWEEP_ARGS, **SWEEP_KW))


@pytest.mark.parametrize("folder", list(CHECKPOINTS))
def test_old_checkpoint_resumes(folder, tmp_path):
    net_kw, trials, sim_kw = CHECKPOINTS[folder]
    net = Network(**net_kw)
    copy = tmp_path / folder
    shutil.copytree(DATA_DIR / folder, copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a piece found damaged would be computed again
        resumed = fastvar.simulate(net, trials, checkpoint=copy, **sim_kw)
    uninterrupted = fastvar.simulate(net, trials, **sim_kw)
    assert not resumed.partial and resumed.trials == trials
    _equal(resumed.stats, uninterrupted.stats)
    _same_columns(resumed, uninterrupted)


def test_old_sweep_checkpoint_resumes(tmp_path):
    copy = tmp_path / "checkpoint_sweep"
    shutil.copytree(DATA_DIR / "checkpoint_sweep", copy)
    finished = [json.loads(p.read_text())["result"] for p in copy.glob("*.json")]
    assert len(finished) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = fastvar.sweep(SWEEP_CHECKPOINT_FULL, SWEEP_CHECKPOINT_TRIALS, checkpoint=copy,
                                **SWEEP_CHECKPOINT_KW)
    # the finished configuration was read from the folder, not run again
    assert resumed.results[0].elapsed_s == finished[0]["elapsed_s"]
    _same_sweep(resumed, fastvar.sweep(SWEEP_CHECKPOINT_FULL, SWEEP_CHECKPOINT_TRIALS,
                                       **SWEEP_CHECKPOINT_KW))
