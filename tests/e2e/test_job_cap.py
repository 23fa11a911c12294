"""The server's job cap holds under repeated Start clicks in a real browser, counted in live worker processes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from .server import streamlit_server
from .ui import button, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Heavy enough that a step takes a while (a worker that was not ended would still be training), yet short
# enough (a few minutes even on a busy machine) that Start does not first ask "this would take very long".
HEAVY = "/?hidden=512&batch_size=1024&steps=3000&eval_every=100000"


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process we can see."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        table[int(entry.name)] = (ppid, cmdline)
    return table


def training_workers(port: int) -> int:
    """Worker processes of the server on `port`: the children of its multiprocessing forkserver."""
    table = _processes()
    servers = {
        pid for pid, (_, cmd) in table.items() if "streamlit run app.py" in cmd and f"--server.port {port}" in cmd
    }
    forkservers = {pid for pid, (ppid, cmd) in table.items() if ppid in servers and "forkserver" in cmd}
    return sum(1 for ppid, _ in table.values() if ppid in forkservers)


def test_repeated_start_clicks_never_exceed_the_cap(browser, tmp_path):
    with streamlit_server(env={"MLP_MAX_JOBS": "1"}, log_path=tmp_path / "server.log") as url:
        port = int(url.rsplit(":", 1)[1])
        most = [0]
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                most[0] = max(most[0], training_workers(port))
                time.sleep(0.01)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        first = browser.new_context(viewport={"width": 1400, "height": 1000})
        second = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            page = first.new_page()
            page.set_default_timeout(60_000)
            page.goto(url + HEAVY)
            start = button(page, "btn_start")
            start.wait_for()
            for _ in range(5):  # as fast as a user can click
                start.click()
                time.sleep(0.15)
            status = page.locator(".st-key-run_status").first  # a rerun can briefly show the old one beside it
            wait_until(lambda: "running" in status.inner_text(), 60)
            wait_until(lambda: training_workers(port) == 1, 30)

            # Another session waits in the queue while the cap is taken (issue 16), saying so; it leaves the queue.
            other = second.new_page()
            other.set_default_timeout(60_000)
            other.goto(url + HEAVY)
            button(other, "btn_start").click()
            other.get_by_text("position 1 of 1 — starts when a slot frees").first.wait_for()
            assert training_workers(port) == 1
            button(other, "btn_cancel_queue").click()
            button(other, "btn_cancel_queue").wait_for(state="detached")

            button(page, "btn_stop").click()
            wait_until(lambda: training_workers(port) == 0, 30)
        finally:
            done.set()
            watcher.join()
            first.close()
            second.close()
        assert most[0] == 1, f"{most[0]} training workers ran at once with a cap of 1"
