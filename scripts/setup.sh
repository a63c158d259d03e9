#!/usr/bin/env bash
# Creates .venv (if missing) and installs serl into it. Torch is pinned *first* so pip never
# resolves an unpinned torch (which would pull a multi-GB CUDA build). GPU users: set
# SERL_TORCH_SPEC (e.g. "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128").
# Usage: source scripts/setup.sh [extras]      (extras: "" or "dev")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
extras=${1:-}
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
# shellcheck disable=SC2086
.venv/bin/python -m pip install -q ${SERL_TORCH_SPEC:-torch==2.13.0} 2>&1 | grep -v '^WARNING: Location' || true
spec="."; [ -n "$extras" ] && spec=".[$extras]"
.venv/bin/python -m pip install -q -e "$spec" 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import serl, torch; print('serl', serl.__version__, '| torch', torch.__version__)"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (serl)" >/dev/null
export PATH="$PWD/.venv/bin:$PATH"
