#!/usr/bin/env bash
# Quick start 1/2: set up .venv and run the main job at smoke scale on the embedded defaults.
# Writes reports/<dataset>/main_table.{md,csv} and figures. Extra args go to `serl reproduce`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh ""      # no extras (and not this script's own arguments)
serl reproduce --scale smoke "$@"
