#!/usr/bin/env bash
# Set up (first run only) and open the dashboard: ./run_dashboard.sh [streamlit options]
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh requirements.txt
exec .venv/bin/streamlit run app.py "$@"
