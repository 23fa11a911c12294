#!/usr/bin/env bash
# Shared set-up for run_dashboard.sh and run_tests.sh: a .venv with the pinned requirements.
# Idempotent: re-running only installs what changed (pip skips what is already satisfied).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
req=${1:-requirements.txt}
stamp=".venv/.installed-$(basename "$req")"
# Reinstall only when a requirements file is newer than the last install.
if [ ! -f "$stamp" ] || [ requirements.txt -nt "$stamp" ] || [ "$req" -nt "$stamp" ]; then
  echo "setup: installing $req (torch==2.13.0 is pinned: CPU build where one is provided)"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$req"
  touch "$stamp"
fi
