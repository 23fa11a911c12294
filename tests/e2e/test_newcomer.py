"""Issue 9 in a real browser: what AppTest cannot show (what the browser sends, live refresh, two browsers)."""

from __future__ import annotations

import re

import pytest

from .test_browser import current_step, no_exception, start_run, status_text, stop_run
from .ui import button, go_to, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def sidebar_text(page) -> str:
    return page.locator('[data-testid="stSidebar"]').inner_text()


def test_an_out_of_range_number_stays_on_screen_and_start_refuses_naming_it(context, server_url):
    page = context.new_page()
    page.goto(server_url + "/?hidden=32&steps=1000")
    button(page, "btn_start").wait_for()
    lr = page.locator(".st-key-hp_lr input")
    lr.fill("1000")
    lr.press("Enter")
    page.get_by_text("Learning rate must be between 1e-09 and 100; it is 1,000").first.wait_for()
    button(page, "btn_start").click()
    page.get_by_text("Not started: Learning rate must be between").wait_for()
    assert page.locator(".st-key-run_status").count() == 0  # nothing trained
    wait_until(lambda: lr.count() == 1, 15)  # while a rerun draws, the old element can sit beside the new one
    assert lr.input_value() == "1000"  # the screen still shows what was typed
    no_exception(page)


def test_train_vs_dev_refreshes_while_the_run_trains(context, server_url):
    page = context.new_page()
    start_run(page, server_url)
    go_to(page, "Train vs dev")

    def evaluations() -> int:
        return page.evaluate(
            """() => {
                const plot = document.querySelector('.st-key-train_dev_chart .js-plotly-plot');
                if (!plot || !plot.data) return -1;
                const x = plot.data[0].x;
                return (x._inputArray || x).length;
            }"""
        )

    first = wait_until(lambda: evaluations() > 0 and evaluations(), 60)
    wait_until(lambda: evaluations() > first, 60)  # no click: the page follows the run
    no_exception(page)
    stop_run(page)


def test_checkpoints_page_follows_the_run_and_its_best_dev_weights(context, server_url):
    page = context.new_page()
    start_run(page, server_url)
    go_to(page, "Checkpoints")

    def shown_step() -> int:
        caption = page.get_by_text(re.compile(r"^Run #\d+ · step [\d,]+")).first
        match = re.search(r"step ([\d,]+)", caption.inner_text()) if caption.count() else None
        return int(match.group(1).replace(",", "")) if match else -1

    first = wait_until(lambda: shown_step() > 0 and shown_step(), 60)
    wait_until(lambda: shown_step() > first, 60)  # no click: the page follows the run
    # The first dev evaluation appears by itself, with the buttons for those weights.
    button(page, "btn_download_best").wait_for(timeout=60_000)
    no_exception(page)
    stop_run(page)


def test_a_shared_link_is_read_only_and_the_watcher_follows_the_run(browser, server_url):
    a = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    b = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        start_run(a, server_url)
        link = a.url
        b.goto(link)  # the whole URL, run id included, in another browser
        b.get_by_text("you are watching it").wait_for()
        assert button(b, "btn_pause").is_disabled() and button(b, "btn_stop").is_disabled()
        assert b.locator(".st-key-btn_take_over").count() == 0  # a link never lets its holder drive
        wait_until(lambda: "running" in status_text(b), 15)
        a.reload()  # the first browser reloads: still its run, still in control
        a.locator(".st-key-run_status").first.wait_for()
        assert a.get_by_text("you are watching it").count() == 0
        wait_until(lambda: button(a, "btn_pause").is_enabled(), 15)
        button(a, "btn_pause").click()
        # No click in the second browser: its view refreshes with the run.
        wait_until(lambda: "paused" in status_text(b), 15)
        assert current_step(b) > 0
        assert button(b, "btn_resume").is_disabled()
        assert re.search(r"run=([\w-]+)", a.url).group(1) == re.search(r"run=([\w-]+)", b.url).group(1)
        button(a, "btn_stop").click()
        wait_until(lambda: "stopped" in status_text(b), 15)
        no_exception(a)
        no_exception(b)
    finally:
        a.context.close()
        b.context.close()


def test_a_heavy_run_is_announced_and_shows_its_first_steps(context, server_url):
    page = context.new_page()
    page.goto(server_url + "/?emb_dim=64&hidden=4096&batch_size=4096&steps=1000000")
    button(page, "btn_start").click()
    page.get_by_text("This run would take about").wait_for()
    assert page.locator(".st-key-run_status").count() == 0
    button(page, "btn_start").click()
    page.locator(".st-key-run_status").first.wait_for()
    wait_until(lambda: "per step" in status_text(page) or "first steps under way" in status_text(page), 30)
    stop_run(page)
    no_exception(page)
