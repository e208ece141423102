"""simulate(client=...) on a Dask LocalCluster: bitwise the local result, survives worker loss."""
import os

import numpy as np
import pytest

import fastvar
from fastvar import dask_runner
from fastvar.runs import Run

distributed = pytest.importorskip("distributed")

NET = fastvar.mlp(16, 4)  # blocks of 256 networks, ~2.5 ms each on one core


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def test_bitwise_the_local_result_and_one_numba_thread_per_worker(client):
    for engine, trials in (("direct", 256 * 40), ("numpy", 64)):
        local = fastvar.simulate(NET, trials, seed=5, engine=engine)
        remote = fastvar.simulate(NET, trials, seed=5, engine=engine, client=client)
        np.testing.assert_array_equal(remote.stats, local.stats)
        assert remote.trials == trials and not remote.partial
    threads = client.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS)
    assert set(threads.values()) == {1}, threads  # threads_per_worker=1


def test_a_worker_killed_mid_run_costs_only_its_tasks(client, monkeypatch):
    trials = 256 * 1200  # ~3 s of work, 8 tasks
    local = fastvar.simulate(NET, trials, seed=6, engine="direct")
    real, killed = Run.add, []

    def add(run, first, stats):  # after the first task: kill a worker busy with another
        if not killed:
            busy = [w for w, keys in client.processing().items() if keys]
            killed.append(busy[0])
            client.run(os._exit, 1, workers=busy[:1], on_error="ignore")
        real(run, first, stats)

    monkeypatch.setattr(Run, "add", add)
    remote = fastvar.simulate(NET, trials, seed=6, engine="direct", client=client)
    assert killed
    np.testing.assert_array_equal(remote.stats, local.stats)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, with the plugin's setup
    threads = client.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS)
    assert set(threads.values()) == {1}, threads


def test_checkpoint_with_client_resumes_bitwise(client, monkeypatch, tmp_path):
    trials = 256 * 400
    local = fastvar.simulate(NET, trials, seed=8, engine="direct")
    real, calls = Run.add, []

    def add(run, first, stats):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(first)
        real(run, first, stats)

    monkeypatch.setattr(Run, "add", add)
    with pytest.raises(fastvar.Interrupted) as info:
        fastvar.simulate(NET, trials, seed=8, engine="direct", client=client,
                         checkpoint=tmp_path / "ck")
    monkeypatch.undo()
    part = info.value.result
    assert part is None or (part.partial and part.trials < trials)
    assert os.listdir(tmp_path / "ck") != ["request.json"]  # something was kept
    resumed = fastvar.simulate(NET, trials, seed=8, engine="direct", client=client,
                               checkpoint=tmp_path / "ck")
    np.testing.assert_array_equal(resumed.stats, local.stats)
    again = fastvar.simulate(NET, trials, seed=8, engine="direct", checkpoint=tmp_path / "ck")
    np.testing.assert_array_equal(again.stats, local.stats)


def test_progress_bar_with_client(client, capsys):
    fastvar.simulate(NET, 256 * 8, engine="direct", client=client, progress=True)
    assert "2.05k/2.05k" in capsys.readouterr().err


def test_bad_clients_fail_before_any_work(client):
    with pytest.raises(TypeError, match="dask.distributed.Client"):
        fastvar.simulate(NET, 100, client="tcp://127.0.0.1:8786")
    with pytest.raises(ValueError, match="threads applies to local runs"):
        fastvar.simulate(NET, 100, client=client, threads=1)


def test_task_size_targets_seconds_and_spreads_short_runs():
    request, engine = fastvar.api.plan(NET, 256 * 100_000, engine="direct")
    big = dask_runner.task_blocks(request, engine, threads=1, workers=2)
    block_seconds = engine.seconds_per_network(request) * 256
    assert big == int(fastvar.engines.costs.TASK_SECONDS / block_seconds)
    request, engine = fastvar.api.plan(NET, 256 * 16, engine="direct")
    assert dask_runner.task_blocks(request, engine, threads=1, workers=2) == 2


def test_a_sweep_on_the_cluster_is_bitwise_the_local_sweep(client):
    grid = {"init": [1.0, 2.0], "bias_std": [0.0, 0.3]}
    kw = dict(width=8, depth=3, activation="tanh", seed=3)
    local = fastvar.sweep(grid, 512, **kw)
    remote = fastvar.sweep(grid, 512, client=client, **kw)
    assert remote.seeds == local.seeds
    for a, b in zip(local.results, remote.results):
        np.testing.assert_array_equal(a.stats, b.stats)


def test_a_client_closed_mid_run_keeps_the_finished_blocks(monkeypatch):
    # client.close() from another thread mid-run gave ClosedClientError and no result
    import threading

    from fastvar.runs import ClientClosed

    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        c = distributed.Client(cluster)
        real, closer = Run.add, []

        def add(run, first, stats):  # after the first task: close the client elsewhere
            real(run, first, stats)
            if not closer:
                closer.append(threading.Thread(target=c.close))
                closer[0].start()
                closer[0].join()

        monkeypatch.setattr(Run, "add", add)
        with pytest.raises(ClientClosed) as stop:
            fastvar.simulate(NET, 256 * 400, seed=6, engine="direct", client=c)
    res = stop.value.result
    assert res is not None and res.partial and 0 < res.trials < 256 * 400
    local = fastvar.simulate(NET, res.trials, seed=6, engine="direct")
    np.testing.assert_array_equal(res.stats, local.stats)
