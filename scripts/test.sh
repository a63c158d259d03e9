#!/usr/bin/env bash
# Quick start 2/2: set up .venv with the dev extras and run every test:
# the notebooks' own tests (nbdev-test) and the end-to-end tests (pytest).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh dev,docs,dashboard,ray
# the docs-site and dashboard browser tests need Chromium: install it (as scripts/docs_test.sh does) or say loudly that they skip
source scripts/chromium.sh || echo "WARNING: no Chromium: the browser tests in tests/test_docs_site.py and tests/test_dashboard.py will be SKIPPED" >&2
echo "== nbdev-test (notebook tests) =="
nbdev-test --n-workers 2 ${SERL_TEST_FLAGS:+--flags "$SERL_TEST_FLAGS"}
echo "== pytest (end-to-end tests) =="
set +e
pytest -q -rs --durations=25 tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi
exit "$rc"
