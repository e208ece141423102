"""pytest-benchmark: how long ``fastvar serve``'s page waits for its default view.

    pytest bench/test_bench_serve.py --benchmark-enable

One ``GET /api/simulate`` of the page's default view (width 256, depth 20, ReLU, He,
2 000 trials, exact engine) through Starlette's TestClient, warm (kernels loaded at the
app's start, one request before timing): the request parsing, the estimate, the run, the
theory columns and ``Result.to_json``, as the page gets them (no network in between).
``/api/plan``, which the page asks first, and ``simulate()`` itself (the baseline: a busy
machine slows both alike) are timed beside it.
"""
import warnings

import pytest

pytest.importorskip("starlette")
pytest.importorskip("httpx")
with warnings.catch_warnings():  # Starlette 1.x suggests httpx2 over httpx: either works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

import fastvar  # noqa: E402
from fastvar.serve import create_app  # noqa: E402

DEFAULT_VIEW = "width=256&depth=20&activation=relu&init=he&trials=2000&seed=0&engine=exact"


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app()) as c:
        assert c.get(f"/api/simulate?{DEFAULT_VIEW}").status_code == 200  # warm
        yield c


@pytest.mark.parametrize("path", ["/api/simulate", "/api/plan"])
def test_default_view(benchmark, client, path):
    benchmark.group = "serve-default-view"
    answer = benchmark(client.get, f"{path}?{DEFAULT_VIEW}")
    assert answer.status_code == 200


def test_default_view_simulate_alone(benchmark):
    benchmark.group = "serve-default-view"
    net = fastvar.mlp(256, 20, activation="relu", init="he")
    run = lambda: fastvar.simulate(net, 2000, seed=0, engine="exact").to_json()  # noqa: E731
    run()
    assert benchmark(run)
