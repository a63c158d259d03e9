#!/usr/bin/env bash
# Creates .venv (if missing) and installs serl into it. Torch is pinned *first* so pip never
# resolves an unpinned torch (which would pull a multi-GB CUDA build). GPU users: set
# SERL_TORCH_SPEC (e.g. "torch==2.13.0 --index-url <your CUDA wheel index>").
# Usage: source scripts/setup.sh [extras]      (extras: "", or a comma list of dev, docs, dashboard, ray)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
extras=${1:-}
# pip, quiet, without the index's location warnings; pip's own exit status is kept (pipefail)
pipq() { .venv/bin/python -m pip -q "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }; }
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
pipq install --upgrade pip
# shellcheck disable=SC2086
pipq install ${SERL_TORCH_SPEC:-torch==2.13.0}
spec="."; [ -n "$extras" ] && spec=".[$extras]"
pipq install -e "$spec"
.venv/bin/python -c "import serl, torch; print('serl', serl.__version__, '| torch', torch.__version__)"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (serl)" >/dev/null
export PATH="$PWD/.venv/bin:$PATH"
