"""``fastvar serve``'s API through Starlette's TestClient, and the command that runs it.

The API must answer bitwise what simulate() computes with the same arguments, refuse bad or
absurd requests naming the parameter before any work, bound the simulations running at
once, and keep serving whatever it was sent. Skipped without Starlette, unless
FASTVAR_REQUIRE_BROWSER=1 (CI), where a missing dependency fails.
"""
import concurrent.futures
import contextlib
import importlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings

import numpy as np
import pytest

import fastvar
from fastvar import mlp, simulate
from fastvar.network import NETWORK_OPTIONS, Network
from fastvar.options import EXECUTION_OPTIONS, RUN_OPTIONS, SHAPE_OPTIONS

REQUIRED = os.environ.get("FASTVAR_REQUIRE_BROWSER") == "1"


def require(module: str):
    """``module`` imported; else skip this test module (fail under FASTVAR_REQUIRE_BROWSER=1)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if REQUIRED:
            raise
        pytest.skip(f"needs {module}: pip install 'fastvar[serve]'", allow_module_level=True)


require("starlette")
require("httpx")
with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx: either works
    warnings.simplefilter("ignore")
    testclient = require("starlette.testclient")

from fastvar.serve import create_app  # noqa: E402
from fastvar.cli.common import network_from_args  # noqa: E402
from fastvar.serve.app import POLL_S, Slots, clip  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::fastvar.IncompleteStatisticsWarning")


@pytest.fixture(scope="module")
def client():
    with testclient.TestClient(create_app(max_seconds=2.0)) as c:
        yield c


def identical(a: np.ndarray, b: np.ndarray) -> bool:
    """Bitwise equality of two float arrays (NaN included)."""
    return a.shape == b.shape and a.tobytes() == b.tobytes()


# query -> the same request as simulate() arguments
CASES = [
    ("width=32&depth=6&trials=400&seed=7&activation=tanh&init=xavier",
     mlp(32, 6, activation="tanh", init="xavier"), dict(trials=400, seed=7)),
    ("widths=16,24,8&activation=leaky_relu(0.2)&init=1.5&bias_std=0.1&trials=300&seed=3"
     "&engine=direct&distribution=uniform",
     Network([16, 24, 8], activation="leaky_relu(0.2)", init=1.5, bias_std=0.1,
             distribution="uniform"), dict(trials=300, seed=3, engine="direct")),
    ("width=16&depth=4&input_width=8&residual=1/sqrt(L)&norm=rms&correlation=0.5&trials=200"
     "&engine=numpy&gradients=false&seed=1e3",
     mlp(16, 4, input_width=8, residual="1/sqrt(L)", norm="rms"),
     dict(trials=200, engine="numpy", gradients=False, correlation=0.5, seed=1000)),
]


@pytest.mark.parametrize("query,net,kwargs", CASES)
def test_numbers_are_bitwise_those_of_simulate(client, query, net, kwargs):
    answer = client.get(f"/api/simulate?{query}")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    doc = answer.json()
    got = fastvar.Result.from_dict(doc)  # checks the checksum: the document is to_json's
    kwargs = dict(kwargs)
    want = simulate(net, kwargs.pop("trials"), **kwargs)
    assert identical(got.stats, want.stats)
    expected = json.loads(want.to_json())
    assert set(doc) == set(expected)
    timing = {"elapsed_s", "compile_s", "checksum"}
    assert {k: v for k, v in doc.items() if k not in timing} == \
        {k: v for k, v in expected.items() if k not in timing}


def test_csv_is_what_result_writes(client, tmp_path):
    answer = client.get("/api/simulate?width=8&depth=3&trials=64&seed=5&format=csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    simulate(mlp(8, 3), 64, seed=5).to_csv(tmp_path / "want.csv")
    assert answer.text == (tmp_path / "want.csv").read_text()


@pytest.mark.parametrize("query,parameter,status", [
    ("width=abc", "width", 400),                  # the declared parser's message
    ("depth=0", "depth", 400),
    ("init=foo", "init", 400),                    # the Network's own check
    ("activation=sigmoidal", "activation", 400),
    ("engine=warp", "engine", 400),
    ("gradients=maybe", "gradients", 400),
    ("correlation=2", "correlation", 400),
    ("trials=3&correlation=0.5", "correlation", 400),
    ("trials=0", "trials", 400),
    ("width=8&width=9", "width", 400),            # repeated
    ("colour=blue", "colour", 400),               # unknown
    ("checkpoint=/tmp/fastvar-ckpt", "checkpoint", 400),  # execution options
    ("progress=true", "progress", 400),
    ("client=x", "client", 400),
    ("inputs=/etc/passwd", "inputs", 400),        # would read a file of the server
    ("threads=1", "threads", 400),
    ("format=xml", "format", 400),
    ("trials=1e8", "trials", 422),                # over the server's time limit
    ("activation=leaky_relu(1e309)", "activation", 400),  # the message names no option
    ("activation=leaky_relu(nan)", "activation", 400),
    ("width=nan", "width", 400), ("width=inf", "width", 400), ("width=-3", "width", 400),
    ("init=nan", "init", 400), ("bias_std=-1", "bias_std", 400), ("seed=-1", "seed", 400),
    ("trials=1e300", "trials", 400), ("gain=nan", "gain", 400),
    ("width=%ff%fe", "width", 400),               # not UTF-8
    ("depth=1e6&width=4096", "trials", 422),      # its first layers alone are over the limit
    ("depth=16777216&width=1&trials=1", "depth", 422),  # cheap layers, but so many
    ("width=1&depth=1&engine=exact&inputs_per_network=1e9", "inputs_per_network", 400),
])
def test_bad_requests_are_refused_naming_the_parameter(client, query, parameter, status):
    for path in ("/api/simulate", "/api/plan"):
        answer = client.get(f"{path}?{query}")
        assert answer.status_code == status, (path, query, answer.text)
        error = answer.json()
        assert set(error) == {"error", "parameter"} and error["parameter"] == parameter
        assert parameter in error["error"]
    assert client.get("/api/simulate?width=4&depth=2&trials=8").status_code == 200


def test_echoed_user_text_is_cut(client):
    long = "x" * 50_000
    for query, parameter in ((f"{long}=1", long), (f"activation={long}", "activation"),
                             ("width=" + "9" * 5000, "width"),
                             ("activation=" + "a%20" * 5000, "activation")):
        answer = client.get(f"/api/simulate?{query}")
        assert answer.status_code == 400 and len(answer.content) < 1000, answer.text[:200]
        error = answer.json()
        assert "…" in error["error"] and error["parameter"] == clip(parameter)
    assert clip("y" * 61) == "y" * 60 + "…" and clip("y" * 60) == "y" * 60


def test_a_deep_network_is_refused_before_it_is_built(client, monkeypatch):
    import fastvar.serve.app as serve_app

    built = []

    def spy(args, inputs=None):
        built.append(args.depth)
        return network_from_args(args, inputs)

    monkeypatch.setattr(serve_app, "network_from_args", spy)
    for query in ("depth=1e6&width=4096", "depth=16777216&width=1&trials=1", "depth=1e6"):
        tick = time.perf_counter()
        answer = client.get(f"/api/plan?{query}")
        assert answer.status_code == 422 and answer.json()["parameter"] in ("trials", "depth")
        assert time.perf_counter() - tick < 1.0  # was 2.4 s (a million layers built)
        assert built and max(built) <= 2 * serve_app.DEEP, built
        built.clear()
    # a deep network within the limits is still built and answered
    answer = client.get("/api/plan?depth=3000&width=1&trials=10&engine=numpy")
    assert answer.status_code == 200 and len(answer.json()["network"]["widths"]) == 3001


def test_limits_come_from_the_package_estimate(client):
    plan = client.get("/api/plan?width=256&depth=20&trials=2000&engine=exact").json()
    assert plan["engine"] == "exact" and 0 < plan["seconds"] < 2.0
    refused = client.get("/api/simulate?width=256&depth=20&trials=200000&engine=exact")
    assert refused.status_code == 422 and "limit of 2 s" in refused.json()["error"]
    # a million layers: refused up front by the package's own checks, in a moment
    tick = time.perf_counter()
    assert client.get("/api/simulate?depth=1e6&width=4096").status_code in (400, 422)
    assert time.perf_counter() - tick < 10
    with testclient.TestClient(create_app(max_memory=1 << 20, warm=False)) as small:
        answer = small.get("/api/simulate?width=1024&depth=2&trials=2&engine=numpy")
        assert answer.status_code == 422 and "MiB" in answer.json()["error"]


def test_options_describe_the_declarations(client):
    meta = client.get("/api/options").json()
    names = {o["name"]: o for o in meta["options"]}
    declared = SHAPE_OPTIONS + NETWORK_OPTIONS + RUN_OPTIONS + EXECUTION_OPTIONS
    assert set(names) == {o.name for o in declared} | {"trials"}
    for option in EXECUTION_OPTIONS:
        assert names[option.name]["refused"]
    assert names["width"]["refused"] is None and names["width"]["default"] == 256
    assert "exact" in meta["choices"]["engine"] and "tanh" in meta["choices"]["activation"]


def test_concurrent_requests_are_answered_or_turned_away():
    app = create_app(workers=2, queue=4)
    queries = [f"width=16&depth=3&trials=512&seed={seed}" for seed in range(24)]
    with testclient.TestClient(app) as c:
        with concurrent.futures.ThreadPoolExecutor(24) as pool:
            answers = list(pool.map(lambda q: c.get(f"/api/simulate?{q}"), queries))
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 503} and statuses.count(200) >= 2, statuses
        for seed, answer in enumerate(answers):
            if answer.status_code == 200:
                want = simulate(mlp(16, 3), 512, seed=seed)
                assert identical(fastvar.Result.from_dict(answer.json()).stats, want.stats)
            else:
                assert answer.headers["retry-after"] and "busy" in answer.json()["error"]
        slots = app.state.slots
        assert (slots.running, slots.waiting) == (0, 0)
        assert c.get("/api/simulate?width=8&depth=2&trials=8").status_code == 200


def test_a_full_server_answers_503_at_once():
    app = create_app(workers=1, queue=0, warm=False)
    with testclient.TestClient(app) as c:
        slots: Slots = app.state.slots
        slow = threading.Thread(target=c.get, args=("/api/simulate?width=256&depth=20"
                                                    "&trials=6000&engine=exact",))
        slow.start()
        deadline = time.monotonic() + 20
        while slots.running == 0 and time.monotonic() < deadline:
            time.sleep(0.005)
        assert slots.running == 1
        tick = time.perf_counter()
        busy = c.get("/api/simulate?width=8&depth=2&trials=8")
        assert busy.status_code == 503 and time.perf_counter() - tick < 1.0
        slow.join()
        assert c.get("/api/simulate?width=8&depth=2&trials=8").status_code == 200


def test_page_and_assets_are_served_locally(client):
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/plotly.min.js">' in page.text
    assert "connect-src 'self'" in page.headers["content-security-policy"]
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)  # nothing from elsewhere
    plotly = client.get("/static/plotly.min.js")
    assert plotly.status_code == 200 and len(plotly.content) > 1_000_000
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert client.get("/static/../app.py").status_code == 404


def serve_process(*options: str) -> "tuple[subprocess.Popen, str]":
    """A ``fastvar serve --port 0 --no-browser`` process and the URL it prints."""
    proc = subprocess.Popen([sys.executable, "-m", "fastvar", "serve", "--port", "0",
                             "--no-browser", *options], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    found = re.fullmatch(r"fastvar: serving on (http://127\.0\.0\.1:(\d+)/)\n", line)
    if not (found and int(found.group(2)) > 0):
        proc.kill()
        pytest.fail(f"no URL printed: {line!r} {proc.stderr.read()}")
    return proc, found.group(1)


def test_the_command_serves_until_ctrl_c():
    from fastvar.cli.serve import loopback

    assert loopback("127.0.0.1") and loopback("::1") and loopback("localhost")
    assert not loopback("0.0.0.0") and not loopback("192.168.1.2")
    proc, url = serve_process("--max-seconds", "1")
    try:
        with urllib.request.urlopen(url + "api/plan?trials=100", timeout=10) as r:
            assert json.load(r)["trials"] == 100
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "fastvar: stopped" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


# a run of some 20 s on 2 cores: still running when Ctrl-C comes
LONG = "api/simulate?width=256&depth=50&trials=50000&engine=exact"


def start_long_request(url: str, answers: list) -> threading.Thread:
    def ask():
        try:
            with urllib.request.urlopen(url + LONG, timeout=120) as r:
                answers.append((r.status, r.read()))
        except urllib.error.HTTPError as err:
            answers.append((err.code, err.read()))
        except OSError as err:  # the connection closed with no answer
            answers.append((None, repr(err)))

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    time.sleep(1.5)  # the request is checked and its simulation started
    return thread


def test_stop_fails_the_queued_simulations_too():
    # the tasks no worker thread had taken were never run: their requests waited until
    # uvicorn's shutdown cancelled them and answered 500 with a traceback (2 of 10 Ctrl-Cs
    # with four requests in flight)
    from fastvar.serve.app import Stopped, Workers

    workers = Workers(1)
    long_run = (simulate, mlp(64, 10), 10 ** 8)  # chunks of about 0.25 s: stops between
    futures = [workers.submit(*long_run)[0] for _ in range(3)]
    time.sleep(0.5)
    assert futures[0].running() and not futures[1].running()
    workers.stop()
    for future in futures:
        assert isinstance(future.exception(timeout=10), Stopped)


def test_ctrl_c_stops_a_running_simulation_at_once():
    proc, url = serve_process("--max-seconds", "120")
    try:
        answers = []
        asked = start_long_request(url, answers)
        tick = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        took = time.monotonic() - tick
        assert took < 3, f"Ctrl-C took {took:.1f} s to stop the server"  # was 24 s and more
        assert "fastvar: stopped" in proc.stderr.read()
        asked.join(5)
        status, body = answers[0]
        assert status == 503 and b"stopping" in body, answers  # interrupted, not finished
    finally:
        proc.kill()
        proc.wait()


def test_a_second_ctrl_c_exits_at_once():
    proc, url = serve_process("--max-seconds", "120")
    try:
        start_long_request(url, [])
        proc.send_signal(signal.SIGINT)
        time.sleep(0.25)  # a second Ctrl-C, not the echo of the first (ECHO_S)
        tick = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=5) in (0, 130)  # (the first may have stopped it already)
        assert time.monotonic() - tick < 3
        assert "fastvar: stopped" in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()


def test_without_the_serve_extra_the_command_says_what_to_install():
    code = ("import sys; sys.modules['starlette'] = sys.modules['uvicorn'] = None; "
            "from fastvar.cli import main; sys.exit(main(['serve', '--no-browser']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "pip install 'fastvar[serve]'" in done.stderr
    assert "Traceback" not in done.stderr


@contextlib.contextmanager
def serving(app):
    """The origin (http://127.0.0.1:PORT) of a real uvicorn server of ``app`` in a thread."""
    uvicorn = require("uvicorn")
    from fastvar.cli.serve import listen

    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # the warm-up loads (or compiles) the kernels
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(20)
        sock.close()


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as answer:
        return json.load(answer)


def wait_for(origin: str, timeout: float = 30, sleep=time.sleep, **want) -> dict:
    """``/api/status`` once it shows ``want`` (within ``timeout`` seconds), calling
    ``sleep(seconds)`` between looks."""
    deadline = time.monotonic() + timeout
    while True:
        status = get_json(f"{origin}/api/status")
        if all(status[key] == value for key, value in want.items()):
            return status
        assert time.monotonic() < deadline, (status, want)
        sleep(POLL_S)


def test_a_simulation_whose_client_went_away_is_stopped(caplog):
    """The page aborts a stale request: its simulation must stop and free the only slot
    within a chunk (about 0.25 s), not finish (some 20 s on 2 cores) while the fresh request
    waits behind it; and the server keeps serving."""
    caplog.set_level("INFO", logger="fastvar.serve")
    with serving(create_app(max_seconds=120, workers=1, queue=4)) as origin:
        port = int(origin.rsplit(":", 1)[1])
        get_json(f"{origin}/{LONG.replace('50000', '100')}")  # its kernels are compiled
        for _ in range(2):  # twice: the worker thread survives a stop
            aborted = socket.create_connection(("127.0.0.1", port), timeout=10)
            aborted.sendall(f"GET /{LONG} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            wait_for(origin, running=1)
            time.sleep(0.5)  # well inside the simulation
            before = get_json(f"{origin}/api/status")["cancelled"]
            aborted.close()  # as fetch's AbortController does
            tick = time.monotonic()
            doc = get_json(f"{origin}/api/simulate?width=8&depth=2&trials=64&seed=3")
            took = time.monotonic() - tick
            # a generous bound: the aborted run alone would hold the slot some 20 s
            assert took < 5, f"the fresh request waited {took:.1f} s behind a stale one"
            assert identical(fastvar.Result.from_dict(doc).stats,
                             simulate(mlp(8, 2), 64, seed=3).stats)
            status = wait_for(origin, running=0, waiting=0)
            assert status["cancelled"] == before + 1 and status["workers"] == 1
        assert any("client went away" in r.getMessage() for r in caplog.records)
        # a simulation whose client stays is not stopped
        get_json(f"{origin}/api/simulate?width=16&depth=3&trials=256")
        assert get_json(f"{origin}/api/status")["cancelled"] == 2


def test_unknown_api_paths_and_runs_over_a_year_answer_json(client):
    for path, status in (("/api/unknown", 404), ("/api/simulate/x", 404)):
        answer = client.get(path)
        assert answer.status_code == status and answer.headers["content-type"].startswith(
            "application/json"), answer.text
        assert set(answer.json()) == {"error", "parameter"} and "/api/simulate" in answer.json()[
            "error"]
    answer = client.post("/api/simulate")
    assert answer.status_code == 405 and "use GET" in answer.json()["error"]
    assert client.get("/nowhere").headers["content-type"].startswith("text/plain")
    # over the package's own limit (a year), as over the server's: 422, naming trials
    with testclient.TestClient(create_app(max_seconds=1e12, warm=False)) as patient:
        for path in ("/api/simulate", "/api/plan"):
            answer = patient.get(f"{path}?width=4096&depth=1000&trials=1e12")
            assert answer.status_code == 422, answer.text
            assert answer.json()["parameter"] == "trials" and "year" in answer.json()["error"]


def test_counts_are_exact_and_ascii(client):
    answer = client.get("/api/simulate?width=4&depth=1&trials=8&seed=9007199254740993e0")
    assert answer.status_code == 200 and answer.json()["seed"] == 9007199254740993
    answer = client.get("/api/simulate?width=%D9%A8&depth=1&trials=8")  # Arabic-Indic 8
    assert answer.status_code == 400 and "ASCII" in answer.json()["error"]
