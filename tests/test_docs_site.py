"""The docs site in a real browser: build it (`serl.app.docs.build_site`, or take a prebuilt one from
`SERL_DOCS_SITE`), serve it on 127.0.0.1, open every page in headless Debian chromium driven by
Playwright, and fail on a page that does not load, a console error or failed request, a broken
internal link or anchor, an image that does not load, a directive line visible, the results table
missing, or search not answering. Screenshots go to `${SERL_CI_LOGS:-ci-logs}/`.

A directive is visible when a text line starts with the marker, or a code block holds it at a line
start or after a space; prose that names a directive inside a sentence (14_llm4communication says
"so `#| slow`") is not one.

Skips (with the reason) where chromium or playwright is missing, unless SERL_REQUIRE_BROWSER=1
(CI: `bash scripts/docs_test.sh` installs both and sets it), where the skip becomes a failure."""
import os, re, time, urllib.error, urllib.parse, urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest

from browser import CHROMIUM, LOGS, skip_or_fail, chromium_context

DIRECTIVE = "#" + "|"
RESULTS_PAGE = "reports/spy.html"          # a report page that must show the main table (a row TWAP)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    if not Path(CHROMIUM).exists(): skip_or_fail(f"no browser at {CHROMIUM} (Debian: apt-get install chromium; or run scripts/docs_test.sh)")
    try: import playwright.sync_api  # noqa: F401
    except ImportError: skip_or_fail("playwright is not installed (pip install -e '.[docs]')")
    pre = os.environ.get("SERL_DOCS_SITE")
    if pre: return Path(pre)
    from serl.app.docs import build_site
    t0 = time.time()
    out = build_site(tmp_path_factory.mktemp("docs")/"_site")
    print(f"site built in {time.time() - t0:.1f} s")
    return out


@pytest.fixture(scope="module")
def base_url(site):
    from serl.app.docs import serve
    httpd, url = serve(site, port=0, block=False)
    yield url
    httpd.shutdown(); httpd.server_close()


@pytest.fixture(scope="module")
def browser(site):
    with chromium_context(1280, 900) as ctx: yield ctx


class _Ids(HTMLParser):
    "Every id/name a fragment can point to."
    def __init__(self):
        super().__init__(); self.ids = set()
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v: self.ids.add(v)


_fetched: dict = {}


def _fetch(url):
    "(HTTP status, ids of the page) of an internal URL, cached."
    if url not in _fetched:
        try:
            with urllib.request.urlopen(url, timeout=10) as r: status, body = r.status, r.read()
        except urllib.error.HTTPError as e: status, body = e.code, b""
        ids = _Ids()
        if url.endswith((".html", "/")): ids.feed(body.decode("utf-8", "replace"))
        _fetched[url] = (status, ids.ids)
    return _fetched[url]


def open_page(ctx, url):
    "Open `url`; returns (page, problems) after load: console errors, page errors, failed or 4xx/5xx requests."
    page, problems = ctx.new_page(), []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} ({r.failure})"))
    page.on("response", lambda r: problems.append(f"HTTP {r.status}: {r.url}") if r.status >= 400 else None)
    resp = page.goto(url, wait_until="load")
    if resp is None or resp.status != 200: problems.append(f"page did not load: HTTP {resp.status if resp else 'none'}")
    return page, problems


def page_problems(ctx, base_url, rel):
    "Everything wrong with one page."
    page, problems = open_page(ctx, base_url + rel)
    try:
        broken = page.eval_on_selector_all("img", "els => els.filter(e => !e.complete || e.naturalWidth === 0).map(e => e.src)")
        problems += [f"image does not load: {s}" for s in broken]
        text = page.inner_text("body")
        problems += [f"directive line visible: {ln.strip()[:80]}" for ln in text.splitlines() if ln.strip().startswith(DIRECTIVE)]
        problems += [f"directive in a code block: {m.group(0).strip()[:80]}" for t in page.eval_on_selector_all("pre", "els => els.map(e => e.innerText)")
                     for m in re.finditer(r"(?:^|\s)" + re.escape(DIRECTIVE) + r".*", t)]   # also a trailing one (`x = 1  #| hide_line`), not an ascii tqdm bar (`##|`)
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    finally: page.close()
    for href in set(hrefs):
        if not href.startswith(base_url): continue                   # external (GitHub source links): not ours to check
        target, _, frag = href.partition("#")
        status, ids = _fetch(target)
        if status != 200: problems.append(f"broken link: {href} (HTTP {status})")
        elif frag and urllib.parse.unquote(frag) not in ids: problems.append(f"broken anchor: {href}")
    return problems


def _pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html") if p.name != "404.html")


def test_site_has_the_pages(site):
    pages = _pages(site)
    nbs = Path(__file__).resolve().parent.parent/"nbs"
    from serl.app.docs import page_name, chapter_sources
    want = {"index.html", "api.html", "reports/index.html", RESULTS_PAGE} | {f"{page_name(p)}.html" for p in chapter_sources(nbs)}
    assert want <= set(pages), sorted(want - set(pages))


def test_every_page_in_the_browser(site, base_url, browser):
    pages, bad = _pages(site), {}
    t0 = time.time()
    for rel in pages:
        problems = page_problems(browser, base_url, rel)
        if problems: bad[rel] = problems
    print(f"{len(pages)} pages checked in {time.time() - t0:.1f} s")
    assert not bad, "\n".join(f"{rel}:\n  " + "\n  ".join(p[:20]) for rel, p in bad.items())


def test_results_table_and_screenshots(site, base_url, browser):
    LOGS.mkdir(parents=True, exist_ok=True)
    for rel, shot in (("index.html", "docs-home.png"), (RESULTS_PAGE, "docs-results.png"), ("reports/index.html", "docs-summary.png")):
        page, problems = open_page(browser, base_url + rel)
        try:
            assert not problems, (rel, problems)
            page.screenshot(path=str(LOGS/shot), full_page=True)
            if rel != "index.html":
                rows = page.eval_on_selector_all("table tr", "els => els.map(r => r.cells.length ? r.cells[0].innerText.trim() : '')")
                assert "TWAP" in rows, (rel, rows[:20])
        finally: page.close()
    page, _ = open_page(browser, base_url + RESULTS_PAGE)
    assert page.locator("img[src$='pa_distribution.png']").count() == 1
    page.close()


def test_search_works_offline(site, base_url, browser):
    page, problems = open_page(browser, base_url + "index.html")
    try:
        page.locator("label.md-search__icon, .md-search__input").first.click()
        page.fill(".md-search__input", "bootstrap")
        page.wait_for_selector(".md-search-result__item", timeout=15000)
        hits = page.eval_on_selector_all(".md-search-result__item a", "els => els.map(e => e.getAttribute('href'))")
        assert any("metrics.html" in h for h in hits), hits[:10]
        assert not problems, problems
    finally: page.close()
