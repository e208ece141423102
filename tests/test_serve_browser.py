"""The page of ``fastvar serve`` in a real headless Chromium (Debian's, driven by Playwright).

A real uvicorn server runs on a free port of 127.0.0.1; every request the page makes is
logged and any that would leave 127.0.0.1 is aborted and fails the test (the page must
work offline). The page must draw exactly the numbers the API answers, follow its
controls, keep its state in the URL, and offer its downloads. The screenshot goes to
$FASTVAR_SCREENSHOT or a temporary folder; its path is printed.

Skipped without Starlette, uvicorn, Playwright or a ``chromium`` on the PATH, unless
FASTVAR_REQUIRE_BROWSER=1 (CI), where any of them missing fails.
"""
import json
import os
import re
import shutil
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest

import fastvar
from tests.test_serve_api import REQUIRED, get_json, require, serving, wait_for

require("starlette")
require("uvicorn")
sync_api = require("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
if CHROMIUM is None:
    if REQUIRED:
        pytest.fail("FASTVAR_REQUIRE_BROWSER=1 but no chromium on the PATH (apt-get install "
                    "chromium)", pytrace=False)
    pytest.skip("needs Debian's chromium (apt-get install chromium)", allow_module_level=True)

from fastvar.serve import create_app  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::fastvar.IncompleteStatisticsWarning")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 30_000


@pytest.fixture(scope="module")
def server():
    """The origin (http://127.0.0.1:PORT) of a real server, for this module."""
    with serving(create_app()) as origin:
        yield origin


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A Chromium context with a fresh profile; ``.requests`` logs every URL asked for and
    ``.escaped`` those that would have left 127.0.0.1 (aborted)."""
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            args=ARGS, headless=True, accept_downloads=True,
            viewport={"width": 1280, "height": 900})
        context.requests, context.escaped = [], []

        def gate(route):
            url = route.request.url
            context.requests.append(url)
            host = urllib.parse.urlsplit(url).hostname
            if url.startswith(("data:", "blob:")) or host == "127.0.0.1":
                route.continue_()
            else:
                context.escaped.append(url)
                route.abort()

        context.route("**/*", gate)
        yield context
        context.close()


def api(origin: str, query: str) -> dict:
    with urllib.request.urlopen(f"{origin}/api/simulate?{query}", timeout=60) as answer:
        return json.load(answer)


def open_page(browser, url: str):
    page = browser.new_page()
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    page.goto(url)
    page.wait_for_selector("body[data-state=done]", timeout=WAIT_MS)
    return page


def drawn(page, plot: str) -> list:
    """The traces Plotly drew in ``plot``: x, y and error bars of each."""
    return page.evaluate(f"""document.getElementById('{plot}').data.map(t => ({{
        name: t.name, x: t.x, y: t.y, se: t.error_y ? t.error_y.array : null}}))""")


def check_drawn_against_api(page, origin: str) -> dict:
    """The numbers in the q and g plots are the API's columns for the page's query."""
    query = page.get_attribute("body", "data-drawn")
    assert page.get_attribute("#plot-q", "data-query") == query
    assert page.get_attribute("#plot-g", "data-query") == query
    doc = api(origin, query)
    col = doc["columns"]
    q_measured, q_theory = drawn(page, "plot-q")
    g_measured, g_theory = drawn(page, "plot-g")
    assert q_measured["x"] == col["layer"]
    assert (q_measured["y"], q_measured["se"], q_theory["y"]) == \
        (col["q_mean"], col["q_mean_se"], col["q_theory"])
    assert (g_measured["y"], g_measured["se"], g_theory["y"]) == \
        (col["g_mean"], col["g_mean_se"], col["g_theory"])
    return doc


def test_page_draws_the_api_numbers_follows_controls_and_stays_local(server, browser):
    query = "width=32&depth=8&trials=400&seed=5&activation=tanh&init=xavier&engine=exact"
    page = open_page(browser, f"{server}/?{query}")
    assert page.input_value("#width") == "32" and page.input_value("#activation") == "tanh"
    assert page.input_value("#init") == "xavier" and page.input_value("#trials") == "400"
    doc = check_drawn_against_api(page, server)
    assert doc["network"]["activation"] == "tanh" and doc["trials"] == 400
    shown = float(page.inner_text("#explain-z1").split(" ±")[0])  # 4 significant digits
    assert shown == pytest.approx(doc["columns"]["z_var"][0], rel=1e-3)

    # a select: the plots follow, and the URL with them
    page.select_option("#activation", "relu")
    sync_api.expect(page.locator("body")).to_have_attribute(
        "data-drawn", re.compile(r"activation=relu"), timeout=WAIT_MS)
    assert "activation=relu" in page.url
    doc = check_drawn_against_api(page, server)
    assert doc["network"]["activation"] == "relu"

    # a slider (debounced; a stale request is cancelled): 4 -> width 16, then 3 -> 8
    page.locator("#width-slider").fill("4")
    page.locator("#width-slider").fill("3")
    sync_api.expect(page.locator("body")).to_have_attribute(
        "data-drawn", re.compile(r"width=8&"), timeout=WAIT_MS)
    assert check_drawn_against_api(page, server)["network"]["widths"][1] == 8

    # a bad value is refused with the server's message naming it; the page recovers
    page.fill("#depth", "0")
    page.dispatch_event("#depth", "change")
    sync_api.expect(page.locator("#error")).to_contain_text("depth", timeout=WAIT_MS)
    assert page.get_attribute("body", "data-state") == "error"
    page.fill("#depth", "6")
    page.dispatch_event("#depth", "change")
    sync_api.expect(page.locator("body")).to_have_attribute(
        "data-drawn", re.compile(r"depth=6&"), timeout=WAIT_MS)
    sync_api.expect(page.locator("#error")).to_be_hidden()
    # the browser logs the refused request itself as a console error: that one is expected
    page.errors = [e for e in page.errors if "status of 400 (Bad Request)" not in e]

    assert not page.errors, page.errors
    assert not browser.escaped, browser.escaped
    assert browser.requests and all(u.startswith((server, "data:", "blob:"))
                                    for u in browser.requests)
    page.close()


def test_the_url_reopens_the_same_view(server, browser):
    page = open_page(browser, f"{server}/?width=16&depth=5&trials=200&seed=2&correlation=0.5"
                              "&activation=gelu&bias_std=0.2")
    page.check('input[name="view_of"][value="a"]')
    page.locator("#view_layer").fill("2")
    page.uncheck("#view_log")
    sync_api.expect(page).to_have_url(re.compile(r"view_layer=2"))
    url = page.url
    assert "view_of=a" in url and "view_log=0" in url and "correlation=0.5" in url
    first = {plot: drawn(page, plot) for plot in ("plot-q", "plot-g", "plot-c")}
    again = open_page(browser, url)
    assert again.url == url  # the page writes back the state it was given
    assert {plot: drawn(again, plot) for plot in first} == first
    assert again.is_checked('input[name="view_of"][value="a"]')
    assert again.input_value("#view_layer") == "2" and not again.is_checked("#view_log")
    assert again.is_visible("#plot-c") and again.input_value("#correlation") == "0.5"
    assert not page.errors and not again.errors, page.errors + again.errors
    page.close()
    again.close()


def test_downloads_histograms_and_screenshot(server, browser, tmp_path):
    page = open_page(browser, f"{server}/")  # the default view
    query = page.get_attribute("body", "data-drawn")
    with page.expect_download() as got:
        page.click("#download-json")
    doc = json.loads(open(got.value.path()).read())
    want = api(server, query)
    assert fastvar.Result.from_dict(doc).stats.tobytes() == \
        fastvar.Result.from_dict(want).stats.tobytes()
    with page.expect_download() as got:
        page.click("#download-csv")
    assert open(got.value.path()).readline().startswith("layer,width,")
    with page.expect_download() as got:
        page.click('button.png[data-plot="plot-q"]')
    assert open(got.value.path(), "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    hist = drawn(page, "plot-hist")
    if doc.get("histograms"):  # the bars are the API's counts as densities
        h, layer = doc["histograms"], doc["columns"]["layer"][-1]
        counts = np.array(h["z"]["counts"][layer - 1], dtype=float)
        total = counts.sum() + h["z"]["below"][layer - 1] + h["z"]["above"][layer - 1]
        width = h["z"]["scale"][layer - 1] * 2 * h["range"] / h["bins"]
        assert np.allclose(hist[0]["y"], counts / (total * width), rtol=1e-12, atol=0)
    else:
        assert hist == [] and "no histograms" in page.inner_text("#hist-note")

    path = os.environ.get("FASTVAR_SCREENSHOT") or str(tmp_path / "fastvar-serve.png")
    page.screenshot(path=path)
    assert os.path.getsize(path) > 10_000
    print(f"\nscreenshot of the page: {path}")
    assert not page.errors, page.errors
    page.close()


def open_refused(browser, url: str):
    """A page opened on ``url`` that the server refuses: once its error is shown."""
    page = browser.new_page()
    page.errors = []
    page.on("pageerror", lambda err: page.errors.append(str(err)))
    page.goto(url)
    page.wait_for_selector("body[data-state=error]", timeout=WAIT_MS)
    return page


def test_the_url_follows_what_is_shown(server, browser):
    # a histogram layer beyond the new depth: the page shows the last layer, and says so
    page = open_page(browser, f"{server}/?width=16&depth=6&trials=200&seed=1&view_layer=5")
    assert "view_layer=5" in page.url and page.inner_text("#view-layer-out") == "5"
    page.fill("#depth", "3")
    page.dispatch_event("#depth", "change")
    sync_api.expect(page.locator("body")).to_have_attribute(
        "data-drawn", re.compile(r"depth=3&"), timeout=WAIT_MS)
    assert page.inner_text("#view-layer-out") == "3" and "view_layer" not in page.url
    page.close()
    # a link whose layer is beyond its own depth, or no layer at all, is written back as shown
    for layer in ("9", "abc"):
        page = open_page(browser, f"{server}/?width=16&depth=4&trials=200&view_layer={layer}"
                                  "&view_of=zzz")
        assert page.inner_text("#view-layer-out") == "4"
        assert "view_layer" not in page.url and "view_of" not in page.url
        assert page.is_checked('input[name="view_of"][value="z"]')
        assert not page.errors, page.errors
        page.close()


@pytest.mark.parametrize("key,text", [("width", "abc"), ("depth", "1e"), ("seed", "1.5"),
                                      ("bias_std", "abc"), ("correlation", "x")])
def test_a_refused_value_is_echoed_as_typed(server, browser, key, text):
    base = {"width": "16", "depth": "4", "trials": "200", key: text}
    page = open_refused(browser, f"{server}/?" + "&".join(f"{k}={v}" for k, v in base.items()))
    sync_api.expect(page.locator("#error")).to_contain_text(key)
    sync_api.expect(page.locator("#error")).to_contain_text(f"'{text}'")  # was got ''
    assert f"{key}={text}" in page.url  # the URL keeps what was asked
    if key in ("width", "depth", "seed"):
        assert page.input_value(f"#{key}") == text
    assert not page.errors, page.errors
    page.close()


def test_a_value_a_slider_cannot_hold_is_sent_as_written(server, browser):
    page = open_page(browser, f"{server}/?width=16&depth=4&trials=200&bias_std=0.33")
    assert "bias_std=0.33&" in page.get_attribute("body", "data-drawn")  # not 0.35
    assert page.inner_text("#bias-out") == "0.33" and "bias_std=0.33" in page.url
    page.close()


def test_quick_moves_stop_the_stale_simulations_and_show_the_last(server, browser):
    """Each move aborts the request before it (the page's AbortController); the server stops
    those simulations instead of finishing them, and the last view comes. Each must outlast
    the 0.8 s between moves: 60 000 trials at depth 30 take about 1.6 s alone on 2 cores
    (the exact engine, 2026-12; 20 000 did, until they ran in 0.55 s)."""
    page = browser.new_page()

    def sleep(seconds: float) -> None:  # the browser's requests pass the gate meanwhile
        page.wait_for_timeout(seconds * 1000)

    page.goto(f"{server}/?width=256&depth=30&trials=60000&seed=4&engine=exact")
    # the first long run has started (a cold numba cache may first compile its kernels)
    before = wait_for(server, timeout=120, sleep=sleep, running=1)["cancelled"]
    # a long run shows its progress: the estimate, and a bar that fills over it
    sync_api.expect(page.locator("#run-text")).to_contain_text("running: about",
                                                               timeout=WAIT_MS)
    sleep(0.5)
    assert page.evaluate("document.getElementById('progress-bar')"
                         ".getBoundingClientRect().width") > 0
    for depth in ("29", "28"):
        page.locator("#depth-slider").fill(depth)
        sleep(0.8)  # past the debounce: this one's simulation starts, then is stale
    tick = time.monotonic()
    page.locator("#depth-slider").fill("2")
    sync_api.expect(page.locator("body")).to_have_attribute(
        "data-drawn", re.compile(r"depth=2&"), timeout=WAIT_MS)
    took = time.monotonic() - tick
    doc = check_drawn_against_api(page, server)
    assert len(doc["columns"]["layer"]) == 2 and doc["trials"] == 60000
    # the first run and at least one of the two stale ones were stopped, not finished
    status = wait_for(server, sleep=sleep, running=0, waiting=0)
    print(f"the last view came {took:.2f} s after the last move; "
          f"{status['cancelled'] - before} stale simulations stopped")
    assert status["cancelled"] - before >= 2, status
    assert get_json(f"{server}/api/status")["running"] == 0
    page.close()
