#!/usr/bin/env bash
# Set up (first run only) and open the dashboard: ./run_dashboard.sh [streamlit options]
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh requirements.txt
# Jobs on a Ray cluster: an address that does not answer is one line now, not a server that cannot train.
if [ -n "${MLP_RAY_ADDRESS:-}" ]; then .venv/bin/python -m mlp_core.ray_link || exit 2; fi
exec .venv/bin/streamlit run app.py "$@"
