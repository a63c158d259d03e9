#!/usr/bin/env bash
# The docs site, end to end: build it offline from the notebooks and reports (serl.app.docs, strict:
# a broken link or anchor fails), then open every page in headless Chromium (tests/test_docs_site.py).
# Installs what it needs: Debian's chromium (apt-get, as root or with sudo) when /usr/bin/chromium
# is missing, and the dev + docs extras into .venv (scripts/setup.sh). The browser test may not skip
# here (SERL_REQUIRE_BROWSER=1). Screenshots go to ${SERL_CI_LOGS:-ci-logs}/, the site to
# ${SERL_DOCS_OUT:-_site}/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
t0=$SECONDS
logs=${SERL_CI_LOGS:-ci-logs}
site=${SERL_DOCS_OUT:-_site}
mkdir -p "$logs"

source scripts/chromium.sh
apt_s=$CHROMIUM_INSTALL_S
/usr/bin/chromium --version 2>/dev/null | head -1 || true

echo "== .venv with the dev and docs extras =="
t1=$SECONDS
source scripts/setup.sh dev,docs
pip_s=$((SECONDS - t1))

echo "== build the site (strict) =="
t2=$SECONDS
.venv/bin/python -c "import sys; from serl.app.docs import main; sys.exit(main(['--out', sys.argv[1], '--strict']))" "$site" 2>&1 | tee "$logs/docs-build.log"
build_s=$((SECONDS - t2))

echo "== browser test =="
t3=$SECONDS
SERL_DOCS_SITE="$site" SERL_REQUIRE_BROWSER=1 SERL_CI_LOGS="$logs" .venv/bin/python -m pytest -q -rs tests/test_docs_site.py
browser_s=$((SECONDS - t3))
echo "docs test passed in $((SECONDS - t0)) s (chromium install ${apt_s} s, pip ${pip_s} s, build ${build_s} s, browser ${browser_s} s); screenshots in $logs/"
