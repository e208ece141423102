"""A seed gives bitwise the same stats in a process that compiles the kernels afresh and in
one that loads them from numba's cache (no fastmath reassociation where it could differ)."""
import json
import os
import subprocess
import sys

import numpy as np

import fastvar

CASES = [("numpy", 1, "normal"), ("exact", 1, "normal"), ("exact", 2, "normal"),
         ("direct", 1, "uniform"), ("direct", 8, "truncated_normal"),
         ("exact", None, "normal", 0.3), ("direct", None, "normal", -0.5)]  # input pairs
_SCRIPT = """
import json, sys, fastvar
from tests.test_reproducibility import CASES, run
print(json.dumps([run(*case).stats.tolist() for case in CASES]))
"""


def run(engine, k, distribution, correlation=None):
    net = fastvar.Network([7, 33, 20, 9], activation="gelu", init="xavier",
                          distribution=distribution, bias_std=0.2)
    return fastvar.simulate(net, 96, seed=2024, engine=engine, inputs_per_network=k,
                            correlation=correlation)


def test_fresh_compile_equals_cached_kernels(tmp_path):
    here = [run(*case).stats for case in CASES]  # compiled or cached in this process
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))  # an empty cache: compile afresh
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    fresh = json.loads(done.stdout)
    for case, a, b in zip(CASES, here, fresh):
        np.testing.assert_array_equal(a, np.array(b), err_msg=str(case))
