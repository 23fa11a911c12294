"""The Sweep page in a real browser: a small Ray Tune sweep started from the page fills the table and curves.

Runs real Ray, so it needs the isolated network namespace run_tests.sh provides (see tests/sweep_support.py);
the dashboard server gets its own HOME, Ray temp dir and sweeps folder, and every Ray process is ended after.
"""

from __future__ import annotations

import json

import pytest

from tests.sweep_support import ray_env, require_isolated_network

from .server import streamlit_server
from .ui import button, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A small model on the built-in names with a dev evaluation every 100 steps: 300-step trials take ~1 s.
URL = "/sweep?data=builtin&hidden=32&eval_every=100"


def curve_points(page) -> list[int]:
    """Points per trace of the all-trials dev-curve chart, read from the live plotly figure."""
    return page.evaluate(
        """() => {
            const plot = document.querySelector('.st-key-sweep_curves_chart .js-plotly-plot');
            if (!plot || !plot.data) return [];
            return plot.data.map(t => (t.x._inputArray || t.x || []).length);
        }"""
    )


def set_number(page, key: str, value: int) -> None:
    box = page.locator(f".st-key-{key} input")
    box.fill(str(value))
    box.press("Enter")


def test_sweep_from_the_page_fills_table_and_curves(browser, tmp_path):
    require_isolated_network()
    sweeps = tmp_path / "sweeps"
    with ray_env() as env:
        server_env = {k: env[k] for k in ("HOME", "RAY_TMPDIR")} | {"MLP_SWEEP_DIR": str(sweeps)}
        with streamlit_server(env=server_env, log_path=tmp_path / "server.log") as url:
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            ctx.set_default_timeout(30_000)
            page = ctx.new_page()
            page.goto(url + URL)
            button(page, "btn_sweep_start").wait_for()
            set_number(page, "sweep_trials", 4)
            set_number(page, "sweep_steps", 300)
            page.wait_for_timeout(1000)  # the reruns of the two inputs
            button(page, "btn_sweep_start").click()
            wait_until(lambda: "is running on this server" in page.inner_text("body"), 30)

            # A second browser sees none of it: a sweep belongs to the browser that started it (issue 15, #2).
            other = ctx.browser.new_context().new_page()
            other.goto(url + "/sweep")
            other.get_by_role("heading", name="Hyperparameter sweep").wait_for()
            button(other, "btn_sweep_start").wait_for(state="attached")
            assert "is running on this server" not in other.inner_text("body")
            assert other.locator(".st-key-sweep_table").count() == 0
            other.context.close()

            wait_until(lambda: any(n >= 2 for n in curve_points(page)), 120)  # live: curves fill in while running
            wait_until(lambda: "4 / 4 trials ended" in page.inner_text("body"), 180)
            assert page.locator('[data-testid="stException"]').count() == 0
            # The sweep's end reruns the page: its chart can still hold the last live drawing when the text
            # shows (seen: [2, 1, 1]), so wait for the state itself: a trial's whole curve, 100, 200 and 300.
            wait_until(lambda: max(curve_points(page), default=0) == 3, 30)

            [sweep_dir] = [d for d in sweeps.iterdir() if d.is_dir()]
            summary = json.loads((sweep_dir / "summary.json").read_text())
            assert len(summary["trials"]) == 4 and summary["state"] == "finished"
            # While that rerun draws, the old table can sit beside the new one: read it once there is one.
            table = page.locator(".st-key-sweep_table")
            wait_until(lambda: table.count() == 1, 30)
            assert all(tid in table.first.inner_text() for tid in summary["trials"]), table.first.inner_text()

            page.reload()  # reopens the finished sweep from disk
            button(page, "btn_sweep_load").wait_for()
            assert f"Best trial {summary['best']['id']}" in page.inner_text("body")
            button(page, "btn_sweep_load").click()
            wait_until(lambda: "the Sample and Embeddings pages now use it" in page.inner_text("body"), 30)
            button(page, "btn_sweep_use").click()
            wait_until(lambda: "holds the best trial's settings" in page.inner_text("body"), 30)
            ctx.close()
