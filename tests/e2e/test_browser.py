"""The dashboard in a real headless Chromium, clicked through as a user would."""

from __future__ import annotations

import re

import pytest

from mlp_core.checkpoint import load_checkpoint

from .ui import PAGES, button, go_to, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# A long lecture-size run: it keeps training through the whole test, so every page is seen mid-training.
# On the US names: their years slider shows, so the test can see the dataset settings survive page switches.
LONG_RUN = "/?steps=300000&eval_every=200&hidden=64&data=builtin"


def status_text(page) -> str:
    """The sidebar's run status, once there is exactly one (while a rerun draws, the old one can sit beside it)."""
    status = page.locator(".st-key-run_status")
    wait_until(lambda: status.count() == 1, 30)
    return status.first.inner_text()


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
            // plotly sends numeric arrays base64-encoded; the figure keeps the decoded array beside them.
            // y, not x: evenly spaced steps travel as x0/dx (dashboard/charts.py).
            const y = dev.y._inputArray || dev.y;
            return y.length;
        }"""
    )


def start_run(page, base: str, query: str = LONG_RUN) -> None:
    page.goto(base + query)
    button(page, "btn_start").wait_for()
    button(page, "btn_start").click()
    # On a loaded machine the run can be timed over the "very long run" threshold: Start then asks for a second
    # click (the test is about the run, not that question), as a user would give it.
    again = page.get_by_text("Press Start again to train it anyway")
    status = page.locator(".st-key-run_status")  # none while Start asks (no run yet)
    wait_until(lambda: again.count() > 0 or (status.count() > 0 and current_step(page) > 0), 60)
    if again.count() > 0 and status.count() == 0:
        button(page, "btn_start").click()
    wait_until(lambda: current_step(page) > 0, 60)
    wait_until(lambda: "run=" in page.url, 10)


def stop_run(page) -> None:
    stop = button(page, "btn_stop")
    if stop.is_enabled():
        stop.click()
        wait_until(lambda: "stopped" in status_text(page) or "finished" in status_text(page), 15)


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

    for link in [*list(PAGES)[1:], "Train"]:
        go_to(page, link)
        no_exception(page)
        # The heading is drawn before the page's run has written the URL: wait for the state, then check it.
        wait_until(lambda: "run=" in page.url, 30)
        assert f"run={run_id}" in page.url, "navigating lost the run id"
        wait_until(lambda: current_step(page) > 0, 30)
        if link == "LR sweep":
            # A short sweep beside the training run; leave the page the moment it ends (its last rerun
            # and the page switch race: that once cost the sidebar its dataset settings).
            page.locator(".st-key-sweep_steps input").fill("200")
            page.locator(".st-key-sweep_steps input").press("Enter")
            button(page, "btn_sweep").click()
            page.get_by_text("Suggested learning rate").wait_for(timeout=90_000)
    assert "running" in status_text(page)
    # The sidebar draws the dataset after the status: wait for it (never there: the dataset settings were lost).
    years = page.locator(".st-key-data_years").get_by_text("2017")
    wait_until(lambda: years.count() > 0, 30)

    # The sweep's suggestion goes into the sidebar with one click.
    go_to(page, "LR sweep")
    suggested = re.search(
        r"Suggested learning rate: ([\d.e-]+)", page.get_by_text("Suggested learning rate").inner_text()
    )
    button(page, "btn_use_lr").click()
    page.get_by_text("The sidebar's learning rate is now").wait_for()
    lr = page.locator(".st-key-hp_lr input")
    wait_until(lambda: lr.count() == 1 and float(lr.input_value()) == float(suggested.group(1)), 15)
    no_exception(page)
    stop_run(page)


def test_sample_download_and_bad_uploads(context, server_url, tmp_path):
    page = context.new_page()
    start_run(page, server_url)

    go_to(page, "Sample")
    button(page, "btn_sample").click()
    metric = page.get_by_text("new names (not in the training set)").first
    metric.wait_for()
    assert re.search(r"\d+ / 20", page.locator('[data-testid="stMetric"]').first.inner_text())
    no_exception(page)

    go_to(page, "Checkpoints")
    steps = []
    for i in range(3):  # the file holds the weights of the step in its name; newer ones when the user asks
        with page.expect_download() as download_info:
            button(page, "btn_download_ckpt").click()
        path = tmp_path / f"downloaded{i}.safetensors"
        download_info.value.save_as(path)
        ckpt = load_checkpoint(path)
        assert ckpt.config.hidden == 64 and ckpt.config.steps == 300000
        assert ckpt.vocab.size == 27 and ckpt.vocab.itos[1] == "a"
        step = ckpt.meta["step"]
        assert download_info.value.suggested_filename == f"makemore_mlp_1_step{step}.safetensors"
        steps.append(step)
        button(page, "btn_ckpt_refresh").click()
        wait_until(lambda step=step: page.get_by_text(f"holds the weights of step {step:,}.").count() == 0, 30)
    assert 0 < steps[0] < steps[1] < steps[2], steps

    bad = tmp_path / "random.safetensors"
    bad.write_bytes(bytes(range(256)) * 40)
    page.locator('.st-key-ckpt_upload input[type="file"]').set_input_files(str(bad))
    error = page.locator('[data-testid="stAlertContentError"]').filter(has_text="Cannot load random.safetensors")
    error.first.wait_for()  # .first: a rerun can briefly show the old element beside the new one
    no_exception(page)
    assert "running" in status_text(page), "a bad upload must not disturb the run"

    page.locator(".st-key-data_source").get_by_text("Upload a file").click()
    binary = tmp_path / "names.bin"
    binary.write_bytes(b"emma\x00\x01\x02olivia\n")
    page.locator('.st-key-data_upload input[type="file"]').set_input_files(str(binary))
    page.locator('[data-testid="stAlertContentError"]').filter(has_text="binary").first.wait_for()
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
        a.locator(".st-key-run_status").first.wait_for()
        wait_until(lambda: current_step(a) >= step_before, 30)
        assert re.search(r"run=([\w-]+)", a.url).group(1) == run_a

        # B opening A's page without the id gets its own run, never A's.
        assert run_a not in b.url
        stop_run(a)
    finally:
        a.context.close()
        b.context.close()


class HeldMessages:
    """Hold back what the server sends one page (its websocket), then deliver it all in order: a busy machine or a
    slow network, where the server has moved on (other sessions' runs) before the browser hears its answer."""

    def __init__(self, page) -> None:
        self.holding, self.queue, self.ws = False, [], None
        page.route_web_socket("**/_stcore/stream", self._route)

    def _route(self, ws) -> None:
        server = ws.connect_to_server()
        self.ws = ws
        server.on_message(lambda message: self.queue.append(message) if self.holding else ws.send(message))
        ws.on_message(server.send)

    def __enter__(self) -> None:
        self.holding = True

    def __exit__(self, *exc) -> None:
        self.holding = False
        for message in self.queue:
            self.ws.send(message)
        self.queue.clear()


def test_checkpoint_downloads_while_training_always_yield_the_file(browser, context, server_url, tmp_path):
    """Click after click on Checkpoints while the run trains, while another user's pages run: every click is a file.

    Each click's answer is held back until the other session has run its page twice: a file the server made for
    the click but no session holds is gone by then (Streamlit collects it after two runs), and Chromium cancels a
    download the server answers with 404.
    """
    page = context.new_page()
    held = HeldMessages(page)
    start_run(page, server_url)
    go_to(page, "Checkpoints")
    other = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    try:
        other.goto(server_url + "/?hidden=32")
        steps_box = other.locator(".st-key-hp_steps input").first
        steps_box.wait_for()
        for i in range(4):
            with page.expect_download(timeout=60_000) as download_info, held:
                button(page, "btn_download_ckpt").click()
                for preset, steps in (("fast", "700"), ("lecture", "200000")):  # two full runs of the other page
                    button(other, f"preset_{preset}").click()
                    wait_until(lambda steps=steps: steps_box.input_value() == steps, 30)
                    other.wait_for_timeout(300)
            download = download_info.value
            path = tmp_path / f"while_training{i}.safetensors"
            download.save_as(path)  # raises "canceled" when the server no longer had the file
            ckpt = load_checkpoint(path)
            step = ckpt.meta["step"]
            assert step > 0 and ckpt.config.steps == 300000
            match = re.search(r"_step(\d+)\.safetensors$", download.suggested_filename)
            assert match is not None and int(match.group(1)) == step, (download.suggested_filename, step)
        assert "running" in status_text(page)
        no_exception(page)
    finally:
        other.context.close()
    stop_run(page)
