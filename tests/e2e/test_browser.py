"""The dashboard in a real headless Chromium, clicked through as a user would."""

from __future__ import annotations

import re
import time

import pytest

from mlp_core.checkpoint import load_checkpoint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A long lecture-size run: it keeps training through the whole test, so every page is seen mid-training.
LONG_RUN = "/?steps=300000&eval_every=200&hidden=64"
# Sidebar link -> the page's title.
PAGES = {
    "LR sweep": "Learning-rate range test",
    "Embeddings": "Character embeddings",
    "Train vs dev": "Train vs dev",
    "Sample": "Sample names",
    "Checkpoints": "Checkpoints",
    "Train": "Train",
}


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def button(page, key: str):
    # .first: while a rerun is drawing, Streamlit can briefly show the old element beside the new one.
    return page.locator(f".st-key-{key} button").first


def status_text(page) -> str:
    return page.locator(".st-key-run_status").inner_text()


def current_step(page) -> int:
    match = re.search(r"step ([\d,]+) / ([\d,]+)", status_text(page))
    return int(match.group(1).replace(",", "")) if match else -1


def no_exception(page) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0, page.locator(
        '[data-testid="stException"]'
    ).first.inner_text()


def dev_points(page) -> int:
    """Points of the dev-loss trace in the Train chart, read from the live plotly figure."""
    return page.evaluate(
        """() => {
            const plot = document.querySelector('.st-key-train_chart .js-plotly-plot')
                || document.querySelector('.js-plotly-plot');
            if (!plot || !plot.data) return -1;
            const dev = plot.data.find(t => (t.name || '').startsWith('dev loss'));
            if (!dev) return -1;
            // plotly sends numeric arrays base64-encoded; the figure keeps the decoded array beside them
            const x = dev.x._inputArray || dev.x;
            return x.length;
        }"""
    )


def start_run(page, base: str, query: str = LONG_RUN) -> None:
    page.goto(base + query)
    button(page, "btn_start").wait_for()
    button(page, "btn_start").click()
    wait_until(lambda: current_step(page) > 0, 60)
    wait_until(lambda: "run=" in page.url, 10)


def stop_run(page) -> None:
    stop = button(page, "btn_stop")
    if stop.is_enabled():
        stop.click()
        wait_until(lambda: "stopped" in status_text(page) or "finished" in status_text(page), 15)


def go_to(page, link: str) -> None:
    page.locator('[data-testid="stSidebarNav"]').get_by_text(link, exact=True).click()
    page.get_by_role("heading", name=PAGES[link], exact=True).wait_for()


def test_live_training_chart_gains_points_and_every_page_renders(context, server_url):
    page = context.new_page()
    start_run(page, server_url)
    first_step = current_step(page)
    wait_until(lambda: dev_points(page) >= 1, 30)
    first_points = dev_points(page)
    # The page refreshes itself while the run trains: no click needed to see progress.
    wait_until(lambda: current_step(page) > first_step and dev_points(page) > first_points, 30)
    no_exception(page)
    run_id = re.search(r"run=([\w-]+)", page.url).group(1)

    for link in PAGES:
        go_to(page, link)
        no_exception(page)
        assert f"run={run_id}" in page.url, "navigating lost the run id"
        assert current_step(page) > 0
    assert "running" in status_text(page)
    stop_run(page)


def test_sample_download_and_bad_uploads(context, server_url, tmp_path):
    page = context.new_page()
    start_run(page, server_url)

    go_to(page, "Sample")
    button(page, "btn_sample").click()
    metric = page.get_by_text(re.compile(r"new names"))
    metric.wait_for()
    assert re.search(r"\d+ / 20", page.locator('[data-testid="stMetric"]').first.inner_text())
    no_exception(page)

    go_to(page, "Checkpoints")
    with page.expect_download() as download_info:
        button(page, "btn_download_ckpt").click()
    path = tmp_path / "downloaded.safetensors"
    download_info.value.save_as(path)
    ckpt = load_checkpoint(path)
    assert ckpt.config.hidden == 64 and ckpt.config.steps == 300000
    assert ckpt.vocab.size == 27 and ckpt.meta["step"] > 0

    bad = tmp_path / "random.safetensors"
    bad.write_bytes(bytes(range(256)) * 40)
    page.locator('.st-key-ckpt_upload input[type="file"]').set_input_files(str(bad))
    error = page.locator('[data-testid="stAlertContentError"]').filter(has_text="Cannot load random.safetensors")
    error.wait_for()
    no_exception(page)
    assert "running" in status_text(page), "a bad upload must not disturb the run"

    page.locator(".st-key-data_source").get_by_text("Upload a file").click()
    binary = tmp_path / "names.bin"
    binary.write_bytes(b"emma\x00\x01\x02olivia\n")
    page.locator('.st-key-data_upload input[type="file"]').set_input_files(str(binary))
    page.locator('[data-testid="stAlertContentError"]').filter(has_text="binary").wait_for()
    no_exception(page)
    stop_run(page)


def test_reload_reattaches_and_sessions_are_isolated(browser, server_url):
    a = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    b = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        start_run(a, server_url)
        run_a = re.search(r"run=([\w-]+)", a.url).group(1)
        b.goto(server_url + "/?hidden=32&steps=1000")
        b.get_by_text("No run yet").wait_for()  # a fresh session: nothing of A's run shows
        assert b.locator(".st-key-run_status").count() == 0
        button(b, "btn_start").click()
        wait_until(lambda: current_step(b) > 0, 60)
        wait_until(lambda: "run=" in b.url, 15)
        run_b = re.search(r"run=([\w-]+)", b.url).group(1)
        assert run_a != run_b
        assert "#1" in status_text(b) and current_step(b) <= 1000, "B shows its own run, not A's"

        step_before = current_step(a)
        a.reload()
        a.locator(".st-key-run_status").wait_for()
        wait_until(lambda: current_step(a) >= step_before, 30)
        assert re.search(r"run=([\w-]+)", a.url).group(1) == run_a

        # B opening A's page without the id gets its own run, never A's.
        assert run_a not in b.url
        stop_run(a)
    finally:
        a.context.close()
        b.context.close()
