#!/usr/bin/env bash
# Set up (first run only) and run every check CI runs: ruff, then the whole pytest suite,
# browser tests included. Extra arguments go to pytest (e.g. ./run_tests.sh -k sampling).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh requirements-dev.txt
# The browser tests drive Debian's chromium through Playwright (Playwright's own browser download
# does not work offline). Install it when missing and we can.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing Debian's chromium for the browser tests"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium fonts-dejavu-core >/dev/null
  else
    echo "setup: /usr/bin/chromium is missing; install it (sudo apt-get install chromium) or the browser tests are skipped" >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/python -m pytest "$@"
