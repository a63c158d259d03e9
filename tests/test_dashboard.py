"""`serl dashboard` in a real browser: start the app on 127.0.0.1 with the committed reports and a small run made here
(a learned baseline trained for a few updates by `train_learned`, which writes its per-update records as any run does, and
the committed SE-RL run fixture `tests/data/serl-run`), open every page in headless Chromium driven by Playwright, and fail
on a Streamlit exception block, a console error, a failed request or a request to any host but 127.0.0.1. Then change a
Results filter and check the table changes, append a record to the run while the Training page is open and check the
curve grows, and run the Market page's simulated market. Prints each page's load time and the market run's time;
screenshots of every page go to `${SERL_CI_LOGS:-ci-logs}/dashboard-*.png`.

Skips (with the reason) where chromium, playwright or streamlit is missing, unless SERL_REQUIRE_BROWSER=1, where the skip
becomes a failure (as in tests/test_docs_site.py)."""
import os, shutil, socket, subprocess, tempfile, time, urllib.parse, urllib.request
from pathlib import Path

import numpy as np
import pytest

from browser import CHROMIUM, LOGS, skip_or_fail, chromium_context

REPO = Path(__file__).resolve().parent.parent
PAGES = {"training": "Training", "results": "Results", "se-rl": "SE-RL", "market": "Market"}
LOAD_LIMIT_S = 2.0                # a page with the committed reports, 2 cores
MARKET_LIMIT_S = 1.0              # the Market page's simulated day


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    "A runs folder: a PPO learned baseline trained here for a few updates, and the committed SE-RL run fixture."
    from serl.core import DataConfig, EnvConfig
    from serl.market.data import load_dataset
    from serl.agent.learned import train_learned, learned_config
    root = tmp_path_factory.mktemp("runs")
    dcfg = DataConfig(dataset="synthetic-nasdaq100", n_instruments=2, n_days=20)
    ds = load_dataset(dcfg, seed=0)
    cfg = learned_config("smoke"); cfg.train_env_steps = 3 * cfg.num_envs * 8; cfg.eval_every = 1
    train_learned("PPO", ds.splits["train"], ds.splits["valid"], dcfg, EnvConfig(), cfg, seed=0,
                  run_dir=root/"test"/"smoke"/"learned-seed0", show_progress=False)
    shutil.copytree(REPO/"tests"/"data"/"serl-run", root/"spy"/"smoke"/"serl-seed0")
    return root


@pytest.fixture(scope="module")
def app(runs):
    if not Path(CHROMIUM).exists(): skip_or_fail(f"no browser at {CHROMIUM} (Debian: apt-get install chromium; or run scripts/test.sh)")
    try: import playwright.sync_api, streamlit, plotly  # noqa: F401
    except ImportError as e: skip_or_fail(f"{e.name} is not installed (pip install -e '.[docs,dashboard]')")
    from serl.app.dashboard import streamlit_command
    port = _free_port()
    before = {p: sorted(x.relative_to(p) for x in p.rglob("*")) + [x.stat().st_mtime for x in p.rglob("*")] for p in (runs, REPO/"reports")}
    log = open(tempfile.mktemp(prefix="serl-dashboard-", suffix=".log"), "w")
    env = dict(os.environ, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", HOME=tempfile.mkdtemp())
    proc = subprocess.Popen(streamlit_command(runs, REPO/"reports", "127.0.0.1", port), stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    t0 = time.time()
    while time.time() - t0 < 60:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200: break
        except OSError: time.sleep(0.3)
    else:
        proc.kill(); pytest.fail(f"the dashboard did not start in 60 s: {Path(log.name).read_text()[-2000:]}")
    print(f"streamlit up in {time.time() - t0:.1f} s")
    yield url, runs
    proc.terminate(); proc.wait(10); log.close()
    after = {p: sorted(x.relative_to(p) for x in p.rglob("*")) + [x.stat().st_mtime for x in p.rglob("*")] for p in (runs, REPO/"reports")}
    assert after[REPO/"reports"] == before[REPO/"reports"], "the dashboard wrote into reports/"
    # runs/ changes only by the record this test appended (checked in test_training_curve_grows)


@pytest.fixture(scope="module")
def browser(app):
    with chromium_context(1400, 1000) as ctx: yield ctx


def open_page(ctx, url, ready: str, nav: str | None = None):
    """Open the app at `url` (its first page), then go to page `nav` through the sidebar (a deep link makes Streamlit probe
    `<page>/_stcore/...` first, a 404 by design) and wait until the text `ready` shows and Streamlit has finished;
    (page, problems, seconds of the last step): console errors, page errors, failed requests, 4xx/5xx responses and any
    request to a host other than 127.0.0.1."""
    page, problems = ctx.new_page(), []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    def outside(r):
        host = urllib.parse.urlparse(r.url).hostname
        if r.url.startswith(("data:", "blob:", "about:")) or host == "127.0.0.1": return
        problems.append(f"request to another host: {r.url}")
    page.on("request", outside)
    t0 = time.time()
    page.goto(url, wait_until="domcontentloaded")
    if nav is None: page.get_by_text(ready, exact=False).first.wait_for(timeout=60000)
    else:
        page.locator("[data-testid='stSidebarNav'] a", has_text=nav).first.wait_for(timeout=60000)
        settle(page)
        t0 = time.time()
        page.locator("[data-testid='stSidebarNav'] a", has_text=nav).first.click()
        page.get_by_text(ready, exact=False).first.wait_for(timeout=60000)
    settle(page)
    return page, problems, time.time() - t0


def settle(page, timeout=30):
    "Wait until Streamlit has finished the current run (no running indicator) and charts have drawn."
    t0 = time.time()
    while time.time() - t0 < timeout:
        if page.locator("[data-testid='stStatusWidget']").count() == 0 and page.locator("[data-testid='stSkeleton']").count() == 0: break
        time.sleep(0.1)
    page.wait_for_timeout(300)


def exceptions(page):
    return page.locator("[data-testid='stException']").all_inner_texts()


def goto(page, title: str, ready: str, charts: int = 0) -> float:
    "Click page `title` in the sidebar and wait until `ready` shows, Streamlit has finished and `charts` charts are drawn; seconds."
    t0 = time.time()
    page.locator("[data-testid='stSidebarNav'] a", has_text=title).first.click()
    page.get_by_text(ready, exact=False).first.wait_for(timeout=60000)
    settle(page)
    if charts: page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot .main-svg').length >= n", arg=charts, timeout=60000)
    return time.time() - t0


READY = {"Training": ("updates recorded", 1), "Results": ("orders per method", 1), "SE-RL": ("best candidate", 4), "Market": ("run the market", 0)}


def test_every_page(app, browser):
    """Every page: no exception block, no console error, no outside request. The load time is the time from a click in
    the sidebar to the page drawn, charts included (a warm server: the first visit pays Streamlit's and plotly's imports)."""
    url, _ = app
    LOGS.mkdir(parents=True, exist_ok=True)
    page, problems, first = open_page(browser, url, READY["Training"][0])
    print(f"first visit (cold server): {first:.2f} s")
    times = {}
    for lap in (1, 2):                           # lap 1 pays each page's one-time costs in the server (imports, caches); lap 2 is what a user sees
        for title in ["Results", "SE-RL", "Market", "Training"]:
            times[(lap, title)] = goto(page, title, *READY[title])
            problems += [f"{title}: exception block: {t[:300]}" for t in exceptions(page)]
            if page.locator("h1", has_text=title).count() == 0: problems.append(f"no title {title!r}")
            if lap == 1: page.screenshot(path=str(LOGS/f"dashboard-{title.lower()}.png"), full_page=True)
    page.close()
    for lap in (1, 2): print(f"page load (s), {'first' if lap == 1 else 'second'} visit: " + ", ".join(f"{k} {v:.2f}" for (l, k), v in times.items() if l == lap))
    assert not problems, problems
    slow = {k: round(v, 2) for (l, k), v in times.items() if l == 2 and v > LOAD_LIMIT_S}
    assert not slow, f"pages slower than {LOAD_LIMIT_S} s: {slow}"


def test_results_filter_changes_the_table(app, browser):
    url, _ = app
    page, problems, _ = open_page(browser, url, "orders per method", nav="Results")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1", timeout=60000)
    caption = page.get_by_text("orders per method").first.inner_text()
    box = _size(page)
    page.get_by_text("sell", exact=True).first.click()
    page.wait_for_function("c => !document.body.innerText.includes(c)", arg=caption, timeout=30000)
    settle(page)
    page.wait_for_function("n => { const e = document.querySelector('.js-plotly-plot'); return !!(e && e._fullData) && e._fullData.reduce((a, t) => a + (t._length || 0), 0) < n; }", arg=box, timeout=30000)
    new_caption = page.get_by_text("orders per method").first.inner_text()
    new_box = _size(page)
    assert new_caption != caption and new_box < box, (caption, new_caption, box, new_box)
    assert not exceptions(page) and not problems, (exceptions(page), problems)
    page.screenshot(path=str(LOGS/"dashboard-results-sells.png"), full_page=True)
    page.close()


def _size(page):
    "How much data the page's first chart holds (its traces' points, as plotly counted them)."
    return page.locator(".js-plotly-plot").first.evaluate("e => e._fullData.reduce((a, t) => a + (t._length || 0), 0)")


def test_training_curve_grows(app, browser):
    from serl.core import RunRecords
    url, runs = app
    page, problems, _ = open_page(browser, url, "updates recorded")
    assert "test/smoke/learned-seed0/PPO" in page.get_by_role("combobox").first.input_value()   # the run written last: picked
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 1", timeout=60000)
    n0 = int(page.get_by_text("updates recorded").first.inner_text().split()[0])
    p0 = _size(page)
    rec = RunRecords(runs/"test"/"smoke"/"learned-seed0"/"PPO", "train_log.jsonl")
    last = rec.read("update")[-1]
    rec.append("update", **{k: v for k, v in last.items() if k not in ("kind", "time")} | {"update": last["update"] + 1, "step": last["step"] + 1000})
    page.get_by_text(f"{n0 + 1} updates recorded").first.wait_for(timeout=15000)           # the page polls: no reload
    settle(page)
    page.wait_for_function("n => { const e = document.querySelector('.js-plotly-plot'); return !!(e && e._fullData) && "
                           "e._fullData.reduce((a, t) => a + (t._length || 0), 0) > n; }", arg=p0, timeout=15000)   # the curve grew
    assert not exceptions(page) and not problems, (exceptions(page), problems)
    page.close()


def test_market_runs_live(app, browser):
    url, _ = app
    page, problems, _ = open_page(browser, url, "run the market", nav="Market")
    page.get_by_role("combobox").first.click()                                             # a synthetic dataset: no download
    page.get_by_role("option", name="synthetic-csi100").click()
    settle(page)
    page.get_by_role("button", name="run the market").click()
    page.get_by_text("simulated in").first.wait_for(timeout=120000)
    settle(page)
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 5", timeout=60000)
    text = page.get_by_text("simulated in").first.inner_text()
    secs = float(text.split("simulated in")[1].split("s")[0])
    print(f"market page: one order simulated live in {secs:.2f} s ({text})")
    page.screenshot(path=str(LOGS/"dashboard-market-run.png"), full_page=True)
    assert page.locator(".js-plotly-plot").count() >= 5, page.locator(".js-plotly-plot").count()
    assert not exceptions(page) and not problems, (exceptions(page), problems)
    page.close()
    assert secs <= MARKET_LIMIT_S, f"the market run took {secs:.2f} s (limit {MARKET_LIMIT_S} s)"
