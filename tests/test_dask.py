"""simulate(client=...) on a Dask LocalCluster: bitwise the local result, survives worker loss."""
import os

import numpy as np
import pytest

import fastvar
from fastvar import dask_runner
from fastvar.runs import Run
from fastvar.sweeps import Sweep

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


def _kill_a_busy_worker_after_the_first_task(client, monkeypatch) -> list:
    """Patch Run.add: as the first task's blocks arrive, kill a worker busy with another
    (os._exit: no goodbye to the scheduler); returns the list its address is put in."""
    real, killed = Run.add, []

    def add(run, first, stats):
        if not killed:
            busy = [w for w, keys in client.processing().items() if keys]
            killed.append(busy[0])
            client.run(os._exit, 1, workers=busy[:1], on_error="ignore")
        real(run, first, stats)

    monkeypatch.setattr(Run, "add", add)
    return killed


def test_a_worker_killed_mid_run_costs_only_its_tasks(client, monkeypatch):
    trials = 256 * 1200  # ~3 s of work, 8 tasks
    local = fastvar.simulate(NET, trials, seed=6, engine="direct")
    killed = _kill_a_busy_worker_after_the_first_task(client, monkeypatch)
    remote = fastvar.simulate(NET, trials, seed=6, engine="direct", client=client)
    assert killed
    np.testing.assert_array_equal(remote.stats, local.stats)
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it, with the plugin's setup
    threads = client.run(lambda: __import__("numba").config.NUMBA_NUM_THREADS)
    assert set(threads.values()) == {1}, threads


def _ctrl_c_at_task(n: int, monkeypatch) -> list:
    """Patch Run.add: Ctrl-C as the blocks of the (n+1)th task arrive; returns the list of
    the first blocks taken before."""
    real, calls = Run.add, []

    def add(run, first, stats):
        if len(calls) == n:
            raise KeyboardInterrupt
        calls.append(first)
        real(run, first, stats)

    monkeypatch.setattr(Run, "add", add)
    return calls


def test_checkpoint_with_client_resumes_bitwise(client, monkeypatch, tmp_path):
    trials = 256 * 400
    local = fastvar.simulate(NET, trials, seed=8, engine="direct")
    _ctrl_c_at_task(3, monkeypatch)
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


def _covered(tasks, runs):
    """Each run's blocks, in the order its pieces come: every block exactly once."""
    blocks = [[] for _ in runs]
    for task in tasks:
        for i, first, count in task:
            blocks[i] += range(first, first + count)
    return blocks


def test_tasks_target_seconds_split_large_runs_and_pack_small_ones():
    from fastvar.engines.costs import TASK_SECONDS

    big = Run(*fastvar.api.plan(NET, 256 * 100_000, engine="direct"))
    tasks = dask_runner.task_pieces([big], threads=1, workers=2)
    assert all(len(task) == 1 for task in tasks)
    block = big.engine.seconds_per_network(big.request) * 256
    per_task = TASK_SECONDS / (block + dask_runner.PIECE_SECONDS / big.request.blocks)
    assert tasks[0][0][2] == int(per_task) and len(tasks) == -(-100_000 // int(per_task))
    assert _covered(tasks, [big]) == [list(range(100_000))]
    short = Run(*fastvar.api.plan(NET, 256 * 16, engine="direct"))  # 4 tasks per worker
    assert [task[0][2] for task in dask_runner.task_pieces([short], 1, 2)] == [2] * 8
    # 40 one-block runs and a 60-block one: the small ones share tasks, in order
    runs = [Run(*fastvar.api.plan(NET, 256, seed=s, engine="direct")) for s in range(40)]
    runs.append(Run(*fastvar.api.plan(NET, 256 * 60, engine="direct")))
    tasks = dask_runner.task_pieces(runs, threads=1, workers=2)
    assert _covered(tasks, runs) == [[0]] * 40 + [list(range(60))]
    assert 8 <= len(tasks) <= 12 and len(tasks[0]) > 1
    assert dask_runner.kernel_signature(runs[0].request, "direct") == \
        dask_runner.kernel_signature(runs[-1].request, "direct")


def test_a_sweep_on_the_cluster_is_bitwise_the_local_sweep(client):
    grid = {"init": [1.0, 2.0], "bias_std": [0.0, 0.3]}
    kw = dict(width=8, depth=3, activation="tanh", seed=3)
    local = fastvar.sweep(grid, 512, **kw)
    remote = fastvar.sweep(grid, 512, client=client, **kw)
    assert remote.seeds == local.seeds
    for a, b in zip(local.results, remote.results):
        np.testing.assert_array_equal(a.stats, b.stats)


def _close_client_in_add(c, monkeypatch, when) -> list:
    """Patch Run.add: once ``when(run)`` holds after a range is added, close the client
    ``c`` from another thread (and wait for the close); returns the ranges' sizes."""
    import threading

    real, sizes, closer = Run.add, [], []

    def add(run, first, stats):
        real(run, first, stats)
        sizes.append(len(stats))
        if not closer and when(run):
            closer.append(threading.Thread(target=c.close))
            closer[0].start()
            closer[0].join()

    monkeypatch.setattr(Run, "add", add)
    return sizes


@pytest.fixture()
def one_thread_cluster():
    """An in-process cluster of one worker thread (the tests' patches reach the worker)."""
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_a_client_closed_mid_run_keeps_the_finished_blocks(one_thread_cluster, monkeypatch):
    # client.close() from another thread mid-run gave ClosedClientError and no result
    import threading

    from fastvar.interrupts import ClientClosed

    c = distributed.Client(one_thread_cluster)
    # every task but the first (block 0) waits until the client is closed: the close is
    # surely mid-run, however fast the machine (on CI the run once finished first)
    gate, real_compute = threading.Event(), dask_runner._compute

    def compute(request, engine, first, count, threads):
        if first > 0:
            assert gate.wait(60), "the client was never closed"
        return real_compute(request, engine, first, count, threads)

    monkeypatch.setattr(dask_runner, "_compute", compute)
    sizes = _close_client_in_add(c, monkeypatch, lambda run: run.done)
    with pytest.raises(ClientClosed) as stop:
        try:
            fastvar.simulate(NET, 256 * 400, seed=6, engine="direct", client=c)
        finally:
            gate.set()
    res = stop.value.result
    assert sizes and res is not None and res.partial
    assert res.trials == 256 * sizes[0] < 256 * 400  # the first task's blocks, exactly
    local = fastvar.simulate(NET, res.trials, seed=6, engine="direct")
    np.testing.assert_array_equal(res.stats, local.stats)


def test_a_client_closed_after_the_last_block_changes_nothing(one_thread_cluster,
                                                              monkeypatch):
    c = distributed.Client(one_thread_cluster)
    trials = 256 * 400
    _close_client_in_add(c, monkeypatch, lambda run: run.done == run.request.blocks)
    res = fastvar.simulate(NET, trials, seed=6, engine="direct", client=c)
    assert c.status == "closed" and not res.partial and res.trials == trials
    np.testing.assert_array_equal(res.stats,
                                  fastvar.simulate(NET, trials, seed=6, engine="direct").stats)


# ---------------------------------------------------------------- sweeps on the cluster

# a 1-block configuration (width 4) packs with others; the width 48 ones split into ranges
SWEEP_GRID = {"width": [4, 48], "init": [1.0, 2.0]}
SWEEP_KW = dict(depth=4, activation="tanh", engine="direct", seed=11)
SWEEP_TRIALS = 2048


@pytest.fixture(scope="module")
def local_sweep():
    return fastvar.sweep(SWEEP_GRID, SWEEP_TRIALS, **SWEEP_KW)


def _same(a, b):
    assert a.seeds == b.seeds and a.configs == b.configs
    for x, y in zip(a.results, b.results):
        np.testing.assert_array_equal(x.stats, y.stats)


def test_a_sweep_is_one_set_of_tasks_packed_and_split_bitwise_local(client, local_sweep,
                                                                     monkeypatch):
    made, warmed = [], []
    pieces, warm = dask_runner.task_pieces, dask_runner.warm_up
    monkeypatch.setattr(dask_runner, "task_pieces", lambda *a: made.append(pieces(*a)) or made[-1])
    monkeypatch.setattr(dask_runner, "warm_up",
                        lambda c, jobs: warmed.append(jobs) or warm(c, jobs))
    remote = fastvar.sweep(SWEEP_GRID, SWEEP_TRIALS, client=client, **SWEEP_KW)
    _same(remote, local_sweep)
    (tasks,) = made  # one set of tasks for the whole sweep, warmed up once
    assert len(warmed) == 1 and len(warmed[0]) == 4
    assert [len({i for i, _, _ in task}) for task in tasks].count(2) >= 1  # packed
    assert sum(task[0][0] == 3 for task in tasks) > 1  # split


def test_a_worker_killed_mid_sweep_costs_only_its_tasks(client, monkeypatch):
    grid, kw = {"init": [1.0, 1.5, 2.0]}, dict(width=16, depth=4, engine="direct", seed=2)
    trials = 256 * 300  # ~2 s of work in 8 tasks
    local = fastvar.sweep(grid, trials, **kw)
    killed = _kill_a_busy_worker_after_the_first_task(client, monkeypatch)
    _same(fastvar.sweep(grid, trials, client=client, **kw), local)
    assert killed
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it


def test_a_configuration_on_the_cluster_reports_its_own_work_as_elapsed(client):
    # it was the time since the sweep began: about the whole sweep for the last to finish
    import time

    grid, kw = {"depth": [24, 2]}, dict(width=32, engine="direct", seed=1)
    tick = time.perf_counter()
    big, tiny = fastvar.sweep(grid, 256 * 16, client=client, **kw).results  # tiny: last
    wall = time.perf_counter() - tick
    assert 0 < tiny.elapsed_s < big.elapsed_s / 3  # 12x fewer layers
    workers = len(client.nthreads())
    assert big.elapsed_s + tiny.elapsed_s < wall * workers


def test_ctrl_c_keeps_finished_configurations_and_resumes_across_runners(
        client, local_sweep, monkeypatch, tmp_path):
    calls = _ctrl_c_at_task(4, monkeypatch)
    folder = tmp_path / "ck"
    with pytest.raises(fastvar.SweepInterrupted) as info:
        fastvar.sweep(SWEEP_GRID, SWEEP_TRIALS, client=client, checkpoint=folder, **SWEEP_KW)
    monkeypatch.undo()
    partial = info.value.partial
    assert not partial.complete and len(partial) + len(partial.pending) == 4
    for point, res in zip(partial.configs, partial.results):  # finished ones are exact
        np.testing.assert_array_equal(res.stats, local_sweep.results[
            local_sweep.configs.index(point)].stats)
    back = fastvar.load(partial.to_json(tmp_path / "partial.json") or tmp_path / "partial.json")
    assert back.verified and back.configs == partial.configs  # any finished subset loads
    _same(fastvar.sweep(SWEEP_GRID, SWEEP_TRIALS, checkpoint=folder, **SWEEP_KW), local_sweep)

    # and the other way: interrupted locally, resumed on the cluster
    from fastvar import sweeps

    other, real_simulate = tmp_path / "ck2", sweeps.simulate

    def interrupted(*args, **kwargs):
        if calls:
            calls.pop()
            return real_simulate(*args, **kwargs)
        raise KeyboardInterrupt

    calls[:] = [0, 0]
    monkeypatch.setattr(sweeps, "simulate", interrupted)
    with pytest.raises(fastvar.SweepInterrupted):
        fastvar.sweep(SWEEP_GRID, SWEEP_TRIALS, checkpoint=other, **SWEEP_KW)
    monkeypatch.undo()
    assert len(list(other.glob("*.bin"))) == 2
    _same(fastvar.sweep(SWEEP_GRID, SWEEP_TRIALS, client=client, checkpoint=other, **SWEEP_KW),
          local_sweep)


def test_a_partial_sweep_of_any_finished_configurations_loads(local_sweep, tmp_path):
    # a cluster finishes configurations out of order: the finished ones need not be a prefix
    s, path = local_sweep, tmp_path / "partial.json"
    partial = Sweep(s.grid, s.fixed, s.trials, s.seed, s.configs[1::2], s.seeds[1::2],
                    s.results[1::2], pending=s.configs[::2])
    partial.to_json(path)
    back = fastvar.load(path)
    assert back.verified and back.configs == s.configs[1::2] and back.pending == s.configs[::2]
    swapped = Sweep(s.grid, s.fixed, s.trials, s.seed, s.configs[1::2], s.seeds[1::2],
                    s.results[1::2], pending=s.configs[::-2])  # pending out of grid order
    swapped.to_json(path)
    with pytest.raises(ValueError, match="not its grid's 4 in order"):
        fastvar.load(path)


def test_scheduler_option_of_the_command_line(client, local_sweep, tmp_path, capsys):
    from fastvar.cli import main

    address = client.scheduler.address
    out = tmp_path / "s.json"
    grid = ["--grid", "width=4,48", "--grid", "init=1.0,2.0"]
    args = ["--trials", str(SWEEP_TRIALS), "--depth", "4", "--activation", "tanh",
            "--engine", "direct", "--seed", "11", "--quiet"]
    assert main(["sweep", *grid, *args, "--scheduler", address, "--json", str(out)]) == 0
    _same(fastvar.load(out), local_sweep)
    file = tmp_path / "scheduler.json"  # as `dask scheduler --scheduler-file` writes it
    file.write_text(f'{{"type": "Scheduler", "address": "{address}"}}')
    assert main(["simulate", "--width", "16", "--depth", "4", "--trials", "4096",
                 "--engine", "direct", "--quiet", "--scheduler", str(file),
                 "--json", str(out)]) == 0
    local = fastvar.simulate(NET, 4096, seed=0, engine="direct")
    np.testing.assert_array_equal(fastvar.load(out).stats, local.stats)
    capsys.readouterr()


def test_scheduler_option_in_a_process_without_a_default_client(client, tmp_path):
    # the command's own client is not the default one; a fresh process has no other
    import subprocess
    import sys

    out = tmp_path / "s.json"
    done = subprocess.run([sys.executable, "-m", "fastvar", "simulate", "--width", "16",
                           "--depth", "4", "--trials", "4096", "--engine", "direct", "--quiet",
                           "--scheduler", client.scheduler.address, "--json", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    local = fastvar.simulate(NET, 4096, seed=0, engine="direct")
    np.testing.assert_array_equal(fastvar.load(out).stats, local.stats)


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastvar simulate: error: "), err
    return lines[0]


@pytest.mark.parametrize("address, message", [
    ("not a url", "--scheduler 'not a url' is not an address; give tcp://HOST:PORT"),
    ("", "--scheduler is empty; give tcp://HOST:PORT"),
    ("tcp://127.0.0.1", "--scheduler 'tcp://127.0.0.1' is not an address"),
    ("tcp://host:0", "--scheduler 'tcp://host:0' is not an address"),
    ("http://host:8786", "unknown protocol 'http' (known: tcp, tls, ws, wss)"),
    ("no/such/scheduler.json", "no scheduler file no/such/scheduler.json; give"),
    ("{bad}.json", "cannot read the scheduler file {bad}.json"),
])
def test_a_malformed_scheduler_fails_before_connecting(address, message, monkeypatch, capsys,
                                                        tmp_path):
    from fastvar.cli import main

    def never(*args, **kwargs):
        raise AssertionError("connected")

    monkeypatch.chdir(tmp_path)
    (tmp_path / "{bad}.json").write_text("{")
    monkeypatch.setattr(distributed, "Client", never)
    monkeypatch.setattr(dask_runner, "_identity_of", never)
    assert main(["simulate", "--width", "4", "--depth", "2", "--trials", "10",
                 "--scheduler", address]) == 2
    assert message in _one_error_line(capsys.readouterr().err)


def test_an_unreachable_scheduler_is_a_clear_error(client, monkeypatch, capsys):
    from fastvar.cli import main

    monkeypatch.setattr(dask_runner, "CONNECT_SECONDS", 0.5)
    assert main(["simulate", "--width", "4", "--depth", "2", "--trials", "10",
                 "--scheduler", "tcp://127.0.0.1:9"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no Dask scheduler answered at tcp://127.0.0.1:9 within 0.5 s" in line
    worker = sorted(client.nthreads())[0]  # a Dask server, but not the scheduler
    assert main(["simulate", "--width", "4", "--depth", "2", "--trials", "10",
                 "--scheduler", worker]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{worker} is a Dask Worker, not a scheduler" in line
    assert main(["sweep", "--grid", "init=1,2", "--threads", "1",
                 "--scheduler", "tcp://127.0.0.1:9"]) != 0
    assert "--threads applies to local runs" in capsys.readouterr().err


def test_a_refused_scheduler_ends_the_command_at_once_without_a_traceback():
    # it waited 60 s and ended in a traceback of Client.__del__ as the process exited
    import subprocess
    import sys
    import time

    tick = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "fastvar", "simulate", "--width", "4",
                           "--depth", "2", "--trials", "10", "--scheduler", "tcp://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=120)
    took = time.perf_counter() - tick
    assert done.returncode == 2
    assert "no Dask scheduler answered at tcp://127.0.0.1:1" in _one_error_line(done.stderr)
    # the start of a Python process with numba and Dask, plus at most CONNECT_SECONDS
    assert took < 15 + dask_runner.CONNECT_SECONDS, took


def test_workers_that_join_and_leave_mid_sweep(monkeypatch):
    # an adaptive cluster: a worker joins after the first task, the first one retires
    # after the second (in-process workers: they start in a moment)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        first = set(c.nthreads())
        real, calls = Run.add, []

        def add(run, first_block, stats):
            calls.append(first_block)
            if len(calls) == 1:
                cluster.scale(2)
                c.wait_for_workers(2, timeout=30)
            elif len(calls) == 2:
                c.retire_workers(list(first))
            real(run, first_block, stats)

        monkeypatch.setattr(Run, "add", add)
        grid, kw = {"init": [1.0, 2.0]}, dict(width=16, depth=4, engine="direct", seed=4)
        with distributed.get_task_stream(c) as stream:
            remote = fastvar.sweep(grid, 256 * 200, client=c, **kw)
        monkeypatch.undo()
        workers = {t["worker"] for t in stream.data if t["key"].startswith("fastvar-")}
        assert workers - first, workers  # the new worker ran some of them
        assert not first & set(c.nthreads()) and len(calls) > 2  # the first one left
    _same(remote, fastvar.sweep(grid, 256 * 200, **kw))
