"""Fixtures for the browser tests: one dashboard server per session, Debian's chromium via Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .server import CHROMIUM, CHROMIUM_ARGS, ROOT, streamlit_server


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("streamlit") / "server.log"
    # A short idle timeout: a run left training by a failed test stops soon instead of slowing the others.
    with streamlit_server(env={"MLP_MAX_JOBS": "6", "MLP_IDLE_TIMEOUT": "60"}, log_path=log) as url:
        yield url
    # A server-side traceback through our code is a bug even when the page hid it. (Up to "Stopping...": a browser
    # still disconnecting while the server shuts down logs a starlette traceback; and Streamlit's own websocket
    # endpoint logs one, all in its code, when a closing browser context races its close: seen 1 in ~25 suites.)
    text = Path(log).read_text(errors="replace").split("Stopping...")[0]
    ours = [tb for tb in text.split("Traceback (most recent call last):")[1:] if f'File "{ROOT}/' in tb]
    assert not ours, ours[0][-4000:]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium); run_tests.sh installs it")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements-dev.txt)")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()
