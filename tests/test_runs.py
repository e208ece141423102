"""Long runs: Ctrl-C keeps the work done (Interrupted), checkpoints resume bitwise."""
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import _thread

import numpy as np
import pytest

import fastvar
from fastvar.api import plan
from fastvar.checkpoint import Checkpoint, CheckpointWarning, _unpack
from fastvar.engines import ENGINES
from fastvar.runs import Run, stop_when

NET = fastvar.mlp(16, 4)  # blocks of 256 networks, ~2.5 ms each on one core


def _stop_after(monkeypatch, engine, calls):
    """Make ``engine.run`` raise KeyboardInterrupt on call number ``calls + 1``, its chunks
    a block per thread (the run would otherwise be one or two chunks of about 0.25 s)."""
    real, seen = ENGINES[engine].run, []
    monkeypatch.setattr(fastvar.runs, "CHUNK_SECONDS", 1e-9)

    def run(request, first, count):
        if len(seen) == calls:
            raise KeyboardInterrupt
        seen.append((first, count))
        return real(request, first, count)

    monkeypatch.setattr(ENGINES[engine], "run", run)
    return seen


def test_interrupt_keeps_the_completed_blocks(monkeypatch):
    seen = _stop_after(monkeypatch, "direct", 2)
    with pytest.raises(fastvar.Interrupted) as info:
        fastvar.simulate(NET, 256 * 50, seed=4, engine="direct")
    res = info.value.result
    blocks = sum(count for _, count in seen)
    assert isinstance(info.value, KeyboardInterrupt)
    assert res.partial and res.trials == 256 * blocks < 256 * 50
    assert np.isfinite(res.q_mean_se).all() and (res.q_mean_se > 0).all()
    assert "PARTIAL" in repr(res)
    back = fastvar.Result.from_dict(json.loads(res.to_json()))
    assert back.partial and back.trials == res.trials
    monkeypatch.undo()
    # a prefix of blocks is exactly the smaller run
    small = fastvar.simulate(NET, res.trials, seed=4, engine="direct")
    assert not small.partial
    np.testing.assert_array_equal(res.stats, small.stats)


def test_interrupt_before_any_block_has_no_result(monkeypatch):
    _stop_after(monkeypatch, "numpy", 0)
    with pytest.raises(fastvar.Interrupted) as info:
        fastvar.simulate(NET, 1000, engine="numpy")
    assert info.value.result is None


def test_an_interrupted_run_of_less_than_one_block_has_no_result(monkeypatch):
    # 63 networks of width 1, depth 4000 are cut into 16 blocks of 4 for the threads; their
    # first 5 would be 20 trials, but a run of 20 trials is cut into 4 blocks of 5 (other
    # streams): no partial result, as when the run was one block
    net = fastvar.mlp(1, 4000)
    request, engine = plan(net, 63, seed=5)
    assert request.blocks == 16 and request.networks < engine.full_block(request)
    seen = _stop_after(monkeypatch, engine.name, 2)
    with pytest.raises(fastvar.Interrupted) as info:
        fastvar.simulate(net, 63, seed=5, threads=1)
    assert len(seen) == 2 and info.value.result is None
    monkeypatch.undo()
    # a run of one block or more keeps its prefix, which is the smaller run
    seen = _stop_after(monkeypatch, "direct", 1)
    with pytest.raises(fastvar.Interrupted) as info:
        fastvar.simulate(NET, 256 * 3, seed=4, engine="direct", threads=1)
    res = info.value.result
    assert res.partial and res.trials == 256
    monkeypatch.undo()
    np.testing.assert_array_equal(
        res.stats, fastvar.simulate(NET, 256, seed=4, engine="direct", threads=1).stats)


def test_sigint_during_a_run_gives_a_partial_result():
    timer = threading.Timer(1.0, _thread.interrupt_main)
    timer.start()
    try:
        with pytest.raises(fastvar.Interrupted) as info:
            fastvar.simulate(NET, 10_000_000, engine="direct")
    finally:
        timer.cancel()
    res = info.value.result
    assert res is not None and res.partial and 0 < res.trials < 10_000_000
    assert np.isfinite(res.z_var_se).all()


def test_a_stop_event_ends_the_run_between_chunks_on_its_thread_only():
    event = threading.Event()
    with stop_when(event):
        event.set()
        with pytest.raises(fastvar.Interrupted) as info:
            fastvar.simulate(NET, 1000, engine="direct")
        assert info.value.result is None  # set before the first chunk
    assert fastvar.simulate(NET, 512, engine="direct").trials == 512  # outside: runs
    event.clear()
    timer = threading.Timer(1.0, event.set)  # set from another thread, mid-run
    timer.start()
    try:
        with stop_when(event), pytest.raises(fastvar.Interrupted) as info:
            fastvar.simulate(NET, 10_000_000, engine="direct")
    finally:
        timer.cancel()
    res = info.value.result
    assert res is not None and res.partial and 0 < res.trials < 10_000_000


def test_partial_flag_is_checked_and_marks_the_csv(monkeypatch, tmp_path):
    _stop_after(monkeypatch, "direct", 1)
    with pytest.raises(fastvar.Interrupted) as info:
        fastvar.simulate(NET, 256 * 20, engine="direct")
    res = info.value.result
    res.to_csv(tmp_path / "r.csv")
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].endswith(",partial") and all(x.endswith(",true") for x in lines[1:])
    data = res.to_dict()
    data["partial"] = "yes"
    with pytest.raises(TypeError, match="partial"):
        fastvar.Result.from_dict(data)
    del data["partial"]  # files from before the flag: complete
    assert not fastvar.Result.from_dict(data).partial


def _cli(*extra):
    return [sys.executable, "-m", "fastvar", "simulate", "--width", "16", "--depth", "4",
            "--engine", "direct", "--quiet", *extra]


def test_cli_ctrl_c_prints_and_writes_the_partial_result(tmp_path):
    out = tmp_path / "r.json"
    child = subprocess.Popen(_cli("--trials", "1e9", "--json", str(out), "--csv",
                                  str(tmp_path / "r.csv"), "--checkpoint", str(tmp_path / "ck")),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "ck" / "prefix.bin").exists():  # the run is under way
        assert time.monotonic() < deadline and child.poll() is None
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode in (130, -signal.SIGINT), (child.returncode, stderr)
    # the estimate of the long run, where the partial files went, then the one line
    assert stderr.endswith("fastvar: wrote " + str(tmp_path / "r.csv") + "\nfastvar: interrupted\n")
    assert "PARTIAL result (interrupted)" in stdout and "q_mean" in stdout
    saved = json.loads(out.read_text())
    assert saved["partial"] is True and 0 < saved["trials"] < 10 ** 9
    assert (tmp_path / "r.csv").read_text().splitlines()[0].endswith(",partial")


_KILLED = """
import sys, fastvar, fastvar.runs
fastvar.runs.SAVE_SECONDS = 0.2  # more saves, so that kills land between and during them
fastvar.simulate(fastvar.mlp(16, 4), int(sys.argv[1]), seed=7, engine="direct",
                 checkpoint=sys.argv[2])
"""


def _pieces_are_whole(folder):
    for name in os.listdir(folder):
        if name.endswith(".bin") and not name.startswith("."):
            with open(os.path.join(folder, name), "rb") as fh:
                assert _unpack(fh.read()) is not None, name


def test_sigkill_and_resume_is_bitwise_the_uninterrupted_run(tmp_path):
    trials = 256 * 2000  # about 5 s of work on 2 cores
    reference = fastvar.simulate(NET, trials, seed=7, engine="direct")
    folder = tmp_path / "ck"
    request, engine = plan(NET, trials, seed=7, engine="direct")
    seed = random.randrange(1 << 30)
    rng, progress, stamp = random.Random(seed), [0], None
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", _KILLED, str(trials), str(folder)])
        deadline = time.monotonic() + 120
        while True:  # until this child has saved something: then kill it at a random moment
            try:
                now = (folder / "prefix.bin").stat().st_mtime_ns
            except FileNotFoundError:
                now = None
            if now != stamp or child.poll() is not None:
                break
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.6))
        child.kill()
        child.wait()
        stamp = (folder / "prefix.bin").stat().st_mtime_ns
        progress.append(Checkpoint(folder, request, engine.name).load()[0])
        _pieces_are_whole(folder)
    # every kill came after a save: the saved prefix grew each time (or the run was done)
    done = request.blocks
    assert all(a < b or a == b == done for a, b in zip(progress, progress[1:])), (seed, progress)
    resumed = fastvar.simulate(NET, trials, seed=7, engine="direct", checkpoint=folder)
    np.testing.assert_array_equal(resumed.stats, reference.stats)
    assert not resumed.partial and resumed.trials == trials
    again = fastvar.simulate(NET, trials, seed=7, engine="direct", checkpoint=folder)
    np.testing.assert_array_equal(again.stats, reference.stats)  # done: read back whole


def test_checkpoint_of_another_request_is_refused(tmp_path):
    fastvar.simulate(NET, 2560, seed=1, engine="direct", checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="another request.*trials=2560 there, 5120 now"):
        fastvar.simulate(NET, 5120, seed=1, engine="direct", checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="another request.*the network differs"):
        fastvar.simulate(fastvar.mlp(16, 5), 2560, seed=1, engine="direct",
                         checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="inputs_sha256"):
        fastvar.simulate(NET, 2560, seed=1, engine="direct", inputs=np.ones(16),
                         checkpoint=tmp_path / "ck")


def test_bad_checkpoint_paths_fail_before_any_work(tmp_path, monkeypatch):
    _stop_after(monkeypatch, "direct", 0)  # any work would raise KeyboardInterrupt
    (tmp_path / "file").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    cases = [(tmp_path / "missing" / "ck", FileNotFoundError, "does not exist"),
             (tmp_path / "file", NotADirectoryError, "is a file"),
             (tmp_path / "other", ValueError, "other files"),
             ("", ValueError, "empty")]
    for path, error, words in cases:
        with pytest.raises(error, match=words):
            fastvar.simulate(NET, 2560, engine="direct", checkpoint=path)
    with pytest.raises(ValueError, match="fixed seed"):
        fastvar.simulate(NET, 2560, seed=None, engine="direct", checkpoint=tmp_path / "ck")
    with pytest.raises(TypeError, match="folder path"):
        fastvar.simulate(NET, 2560, engine="direct", checkpoint=3)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


def test_a_checkpoint_folder_that_cannot_be_written_is_not_left_behind(tmp_path, monkeypatch):
    # a full disk at the first write left an empty folder (found in review)
    import errno

    import fastvar.checkpoint

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fastvar.checkpoint, "write_file", full)
    with pytest.raises(OSError, match="No space left"):
        fastvar.simulate(NET, 256, checkpoint=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()  # the user's own folder stays
    with pytest.raises(OSError, match="No space left"):
        fastvar.simulate(NET, 256, checkpoint=tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()


@pytest.mark.parametrize("damage", ["flip", "truncate", "empty"])
def test_damaged_pieces_are_recomputed_not_trusted(tmp_path, monkeypatch, damage):
    trials = 256 * 30
    reference = fastvar.simulate(NET, trials, seed=2, engine="direct")
    request, engine = plan(NET, trials, seed=2, engine="direct")
    store = Checkpoint(tmp_path / "ck", request, engine.name)
    run = Run(request, engine, checkpoint=store)
    run.add(0, engine.run(request, 0, 10))
    run.save(force=True)
    run.add(20, engine.run(request, 20, 5))  # out of order: a range piece
    run.add(25, engine.run(request, 25, 5))
    prefix, piece, kept = (tmp_path / "ck" / n for n in
                           ("prefix.bin", "range-20-5.bin", "range-25-5.bin"))
    for path in (prefix, piece):
        blob = bytearray(path.read_bytes())
        if damage == "flip":
            blob[-3] ^= 0x10
        path.write_bytes(bytes(blob[: len(blob) // 2] if damage == "truncate" else
                               b"" if damage == "empty" else blob))
    seen = []
    real = engine.run
    monkeypatch.setattr(engine, "run", lambda r, f, c: seen.append((f, c)) or real(r, f, c))
    with pytest.warns(CheckpointWarning, match="damaged"):
        res = fastvar.simulate(NET, trials, seed=2, engine="direct", checkpoint=tmp_path / "ck")
    np.testing.assert_array_equal(res.stats, reference.stats)
    computed = sorted(b for f, c in seen for b in range(f, f + c))
    assert computed == list(range(25)), computed  # blocks 25-29 came from the whole piece
    assert not kept.exists()  # folded into the prefix


def test_a_piece_of_another_request_is_refused(tmp_path):
    request, engine = plan(NET, 2560, seed=2, engine="direct")
    other, _ = plan(NET, 2560, seed=3, engine="direct")
    Checkpoint(tmp_path / "a", other, engine.name).save_range(3, engine.run(other, 3, 2))
    Checkpoint(tmp_path / "b", request, engine.name)
    os.replace(tmp_path / "a" / "range-3-2.bin", tmp_path / "b" / "range-3-2.bin")
    with pytest.raises(ValueError, match="belongs to another request"):
        fastvar.simulate(NET, 2560, seed=2, engine="direct", checkpoint=tmp_path / "b")


def test_a_request_json_without_format_is_read_and_a_newer_one_refused(tmp_path):
    # checkpoints of fastvar 0.1 had no "format" in request.json: they resume the same
    trials = 256 * 6
    reference = fastvar.simulate(NET, trials, seed=2, engine="direct")
    request, engine = plan(NET, trials, seed=2, engine="direct")
    run = Run(request, engine, checkpoint=Checkpoint(tmp_path / "ck", request, engine.name))
    run.add(0, engine.run(request, 0, 3))
    run.save(force=True)
    mine = tmp_path / "ck" / "request.json"
    saved = json.loads(mine.read_text())
    assert saved.pop("format") == "fastvar.checkpoint/2"
    mine.write_text(json.dumps(saved, indent=1, sort_keys=True) + "\n")
    res = fastvar.simulate(NET, trials, seed=2, engine="direct", checkpoint=tmp_path / "ck")
    np.testing.assert_array_equal(res.stats, reference.stats)
    mine.write_text(json.dumps({**saved, "format": "fastvar.checkpoint/99"}))
    with pytest.raises(ValueError, match="another format"):
        fastvar.simulate(NET, trials, seed=2, engine="direct", checkpoint=tmp_path / "ck")


def test_a_mismatch_names_the_values_as_the_user_set_them(tmp_path):
    # histograms is in the fingerprint only when on, correlation as float.hex: the message
    # said "histograms=True there, None now" and the hex text
    fastvar.simulate(NET, 256, seed=2, engine="direct", histograms=True,
                     checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="belongs to another request") as err:
        fastvar.simulate(fastvar.mlp(16, 4, bias_std=0.5), 256, seed=2, engine="direct",
                         correlation=0.5, checkpoint=tmp_path / "ck")
    said = str(err.value)
    assert "the network differs in bias_std: 0.0 there, 0.5 now" in said, said
    assert "histograms=True there, False now" in said, said
    assert "correlation=off there, 0.5 now" in said, said
    assert "None" not in said and "0x1" not in said, said


def test_a_checkpoint_cut_into_other_blocks_says_why(tmp_path):
    # one written before small runs were cut for the threads: the same request, other
    # blocks; the message said only "networks_per_block=256 there, 50 now"
    fastvar.simulate(fastvar.mlp(64, 4), 100, seed=2, checkpoint=tmp_path / "ck")
    mine = next((tmp_path / "ck").glob("*request.json"))
    mine.write_text(json.dumps({**json.loads(mine.read_text()), "networks_per_block": 256}))
    with pytest.raises(ValueError, match="belongs to another request") as err:
        fastvar.simulate(fastvar.mlp(64, 4), 100, seed=2, checkpoint=tmp_path / "ck")
    said = str(err.value)
    assert "networks_per_block=256 there, 50 now" in said, said
    assert "cut into other blocks, by another version of fastvar" in said, said


def test_a_mismatch_of_a_deep_network_is_summarized(tmp_path):
    # the reported case: depth 3000 then 3001 gave one 18 KB line listing every width
    fastvar.simulate(fastvar.mlp(4, 300), 8, seed=1, engine="numpy", checkpoint=tmp_path / "ck")
    with pytest.raises(ValueError, match="belongs to another request") as err:
        fastvar.simulate(fastvar.mlp(4, 301), 8, seed=1, engine="numpy",
                         checkpoint=tmp_path / "ck")
    said = str(err.value)
    assert ("widths: [4x301] there, [4x302] now (301 and 302 values, first differing at "
            "index 301)") in said, said
    assert len(said) < 500, said
    from fastvar.checkpoint import DIFFERENCES_CHARS, differences

    rng = np.random.default_rng(0)  # lists without runs, in many fields: cut, not 18 KB
    saved = {"network": {f"f{i}": rng.random(3000).tolist() for i in range(5)}}
    now = {"network": {f"f{i}": rng.random(3000).tolist() for i in range(5)}}
    text = differences(saved, now)
    assert len(text) <= DIFFERENCES_CHARS + 1 and "(3000 values)" in text
