"""What the browser tests share (tests/test_docs_site.py, tests/test_dashboard.py): where Chromium is, its flags, the
skip-or-fail rule (`SERL_REQUIRE_BROWSER` turns a missing browser into a failure) and a headless persistent context."""
import contextlib, os, tempfile
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SERL_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("SERL_REQUIRE_BROWSER", "") not in ("", "0")
LOGS = Path(os.environ.get("SERL_CI_LOGS", "ci-logs"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def skip_or_fail(reason):
    if REQUIRE: pytest.fail(f"SERL_REQUIRE_BROWSER is set but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium_context(width: int, height: int):
    "A headless Chromium context with a fresh profile (Playwright)."
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix="serl-chromium-") as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=ARGS,
                                                   viewport={"width": width, "height": height})
        yield ctx
        ctx.close()
