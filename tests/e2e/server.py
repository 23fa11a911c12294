"""Start and stop `streamlit run app.py` on a free port: shared by the browser tests and docs/take_screenshots.py."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# As root in a closed network: no sandbox, and no background connections that would only be refused.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode} before it was healthy")
        with contextlib.suppress(OSError), urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            if r.read().strip() == b"ok":
                return
        time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer {url}/_stcore/health within {timeout:.0f} s")


@contextlib.contextmanager
def streamlit_server(
    env: dict[str, str] | None = None, log_path: Path | None = None, script: str | Path = "app.py"
) -> Iterator[str]:
    """Yield the base URL of a fresh server of `script` (default: the dashboard); kill it (and only it) afterwards."""
    with streamlit_process(env, log_path, script) as (_, url):
        yield url


@contextlib.contextmanager
def streamlit_process(
    env: dict[str, str] | None = None, log_path: Path | None = None, script: str | Path = "app.py"
) -> Iterator[tuple[subprocess.Popen, str]]:
    """Like streamlit_server, with the process too (a session and process group of its own: a test may kill
    the whole group, workers included, as a crash would)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false",
        # No file watcher: other edits in the checkout (and inotify overflows) made Streamlit unload modules
        # mid-test, and a page then saw a half-imported pandas. A test server runs the code it started with.
        "--server.fileWatcherType", "none",
    ]  # fmt: skip
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 (closed below)
    process = subprocess.Popen(
        cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process)
        yield process, url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if log_path:
            log.close()
