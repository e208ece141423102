"""Write the files of tests/data/ that tests/test_formats.py reads.

They were written once, by the code of issue 17's starting point (main at 50fb6c0, fastvar
0.1.0), and stand for the files users already have: tests/test_formats.py checks that
today's code still loads and resumes them. Do not run this to make a failing test pass;
run it only to add a fixture, and then only with the code whose files the fixture should
represent:

    PYTHONPATH=. python tests/data/make_fixtures.py

The calls are the ones tests/test_formats.py repeats (imported from it). The partial
checkpoint is made with the objects simulate() itself uses (plan, Checkpoint, Run), which
are internal and may have moved since: its blocks 0-2 are merged into the prefix and
blocks 5-6 saved as an out-of-order piece, the state an interrupted Dask run leaves.
"""
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

import fastvar  # noqa: E402
from fastvar import Network  # noqa: E402
from tests.test_formats import (CHECKPOINTS, RESULTS, SWEEP_ARGS, SWEEP_CHECKPOINT_GRID,  # noqa: E402
                                SWEEP_CHECKPOINT_KW, SWEEP_CHECKPOINT_TRIALS, SWEEP_KW,
                                simulate)


def _fresh(name):
    path = os.path.join(HERE, name)
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)
    return path


def main():
    for name in RESULTS:
        simulate(name).to_json(_fresh(name))
    fastvar.sweep(*SWEEP_ARGS, **SWEEP_KW).to_json(_fresh("sweep.json"))

    net_kw, trials, sim_kw = CHECKPOINTS["checkpoint_done"]
    fastvar.simulate(Network(**net_kw), trials, checkpoint=_fresh("checkpoint_done"), **sim_kw)

    from fastvar.api import plan
    from fastvar.checkpoint import Checkpoint
    from fastvar.runs import Run

    net_kw, trials, sim_kw = CHECKPOINTS["checkpoint_partial"]
    request, engine = plan(Network(**net_kw), trials, **sim_kw)
    assert request.blocks == 8, request.blocks
    run = Run(request, engine, checkpoint=Checkpoint(_fresh("checkpoint_partial"), request,
                                                     engine.name))
    run.add(0, engine.run(request, 0, 3))
    run.save(force=True)
    run.add(5, engine.run(request, 5, 2))

    fastvar.sweep(SWEEP_CHECKPOINT_GRID, SWEEP_CHECKPOINT_TRIALS,
                  checkpoint=_fresh("checkpoint_sweep"), **SWEEP_CHECKPOINT_KW)


if __name__ == "__main__":
    main()
