#!/usr/bin/env bash
# Installs Debian's chromium (+ a font) when /usr/bin/chromium is missing: the browser of the docs-site tests
# (tests/test_docs_site.py). Needs root or passwordless sudo; otherwise says so and returns 1.
# Usage: source scripts/chromium.sh   (sets CHROMIUM_INSTALL_S to the seconds the install took, 0 if none)
CHROMIUM_INSTALL_S=0
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (Debian package) =="
  _t=$SECONDS
  if [ "$(id -u)" -eq 0 ]; then _as_root=(env); elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then _as_root=(sudo -n env); else
    echo "chromium: /usr/bin/chromium is missing and this user can neither apt-get nor sudo (apt-get install chromium)" >&2; return 1; fi
  "${_as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${_as_root[@]}" DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  CHROMIUM_INSTALL_S=$((SECONDS - _t))
fi
