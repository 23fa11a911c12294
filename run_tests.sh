#!/usr/bin/env bash
# Set up (first run only) and run every check CI runs: ruff, then the whole pytest suite,
# browser tests included. Extra arguments go to pytest (e.g. ./run_tests.sh -k sampling).
set -euo pipefail
cd "$(dirname "$0")"
scripts/setup.sh requirements-dev.txt
# The browser tests drive Debian's chromium through Playwright (Playwright's own browser download
# does not work offline). Install it when missing and we can, with a CJK font: without one, Chinese,
# Japanese and Korean names (the embedding scatter of such an upload) draw as empty boxes.
need=()
[ -x /usr/bin/chromium ] || need+=(chromium fonts-dejavu-core)
fc-list :lang=zh family 2>/dev/null | grep -q . || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${need[*]} for the browser tests"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >/dev/null
  else
    echo "setup: missing ${need[*]}; install them (sudo apt-get install ${need[*]}) or the browser tests are skipped or show CJK as boxes" >&2
  fi
fi
.venv/bin/ruff check .
.venv/bin/ruff format --check .
# The Ray tests (tests/test_sweep.py) must not reach any address but loopback: run pytest in a network
# namespace of its own, where loopback is the only interface (root only). Where that is not permitted,
# run pytest as it is and the Ray tests skip, saying why.
if [ "$(id -u)" = 0 ] && unshare -n true 2>/dev/null; then
  exec unshare -n sh -c 'ip link set lo up && exec .venv/bin/python -m pytest "$@"' sh "$@"
fi
export MLP_NETNS_SKIP_REASON="unshare -n is not permitted here (needs root: $(id -un))"
echo "setup: $MLP_NETNS_SKIP_REASON; the Ray tests will skip" >&2
exec .venv/bin/python -m pytest "$@"
