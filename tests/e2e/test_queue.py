"""The job cap as a teacher sees it (issue 16): at the cap, a second browser's Start waits in the queue with its
place shown, and starts by itself as soon as the first browser's run stops."""

from __future__ import annotations

import pytest

from .server import streamlit_server
from .ui import button, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# Small and long: it trains through the test, yet Start does not first ask "this would take very long".
LONG_TINY = "/?emb_dim=2&hidden=16&batch_size=32&steps=500000&eval_every=100000"


def status_text(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def test_a_start_at_the_cap_waits_in_the_queue_then_starts_by_itself(browser, tmp_path):
    with streamlit_server(env={"MLP_MAX_JOBS": "1"}, log_path=tmp_path / "server.log") as url:
        teacher = browser.new_context(viewport={"width": 1400, "height": 1000})
        student = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            a = teacher.new_page()
            a.set_default_timeout(60_000)
            a.goto(url + LONG_TINY)
            button(a, "btn_start").click()
            wait_until(lambda: "running" in a.locator(".st-key-run_status").first.inner_text(), 60)

            b = student.new_page()
            b.set_default_timeout(60_000)
            b.goto(url + LONG_TINY)
            button(b, "btn_start").click()
            b.get_by_text("position 1 of 1 — starts when a slot frees").first.wait_for()
            assert "the limit is" not in status_text(b)  # waiting, not refused
            button(b, "btn_cancel_queue").wait_for()

            button(a, "btn_stop").click()
            # B's run starts by itself: its sidebar shows it training, with no queue message left.
            wait_until(lambda: "running" in b.locator(".st-key-run_status").first.inner_text(), 90)
            wait_until(lambda: "starts when a slot frees" not in status_text(b), 30)
            button(b, "btn_stop").click()
            wait_until(lambda: "stopped" in b.locator(".st-key-run_status").first.inner_text(), 60)
        finally:
            teacher.close()
            student.close()
    text = (tmp_path / "server.log").read_text(errors="replace").split("Stopping...")[0]
    assert "Traceback" not in text, text[-4000:]
