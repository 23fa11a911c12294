"""Runs that outlive their server, in a real Chromium: a crash (SIGKILL of the server's whole process group) and a
clean shutdown (SIGTERM) of a server training a run; a new server on the same MLP_HOME shows the run at the link,
interrupted at its last checkpoint, resumes it, lists it on the Runs page and samples from it."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from mlp_core import resume
from mlp_core.store import RunStore

from .server import streamlit_process
from .test_browser import current_step, no_exception, start_run, status_text
from .ui import button, go_to, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

LONG_RUN = "/?steps=300000&eval_every=200&hidden=64"
SHOTS = Path(os.environ["MLP_SHOTS"]) if os.environ.get("MLP_SHOTS") else None  # screenshots to look at


def checkpoint_step(home: Path) -> int:
    """The step of the (one) run's resume checkpoint in this store, -1 while there is none."""
    found = list((home / "artifacts").glob("*/artifacts/checkpoints/resume.safetensors"))
    return resume.load(found[0]).step if found else -1


def start_long_run(page, url: str) -> str:
    start_run(page, url, LONG_RUN)
    return page.url


def reopen_interrupted(page, link: str) -> int:
    """Open the link on the new server: the run shows as interrupted at its checkpoint's step; returns that step."""
    page.goto(link)
    warning = page.get_by_text("Resume goes on from step")
    warning.wait_for(timeout=90_000)
    wait_until(lambda: "interrupted" in status_text(page) and current_step(page) > 0, 30)
    page.locator(".st-key-train_chart .js-plotly-plot").wait_for()  # its curves, up to the checkpoint
    no_exception(page)
    if SHOTS:
        page.screenshot(path=str(SHOTS / "restart_interrupted.png"), full_page=True)
    return current_step(page)


@pytest.mark.parametrize("how", ["crash", "shutdown"])
def test_a_run_survives_its_server(context, tmp_path, monkeypatch, how):
    home = tmp_path / "home"
    monkeypatch.setenv("MLP_HOME", str(home))  # this test's store, for RunStore() here too
    # A crash keeps what the periodic checkpoints saved; a clean shutdown writes a last one on the way out, so
    # its test has no periodic checkpoint at all: whatever resumes was written by the shutdown.
    every = "0.5" if how == "crash" else "3600"
    env = {"MLP_HOME": str(home), "MLP_CHECKPOINT_EVERY_S": every, "MLP_MAX_JOBS": "2"}
    page = context.new_page()
    with streamlit_process(env, tmp_path / "first.log") as (process, url):
        link = start_long_run(page, url)
        if how == "crash":
            wait_until(lambda: checkpoint_step(home) > 0, 90)
            os.killpg(process.pid, signal.SIGKILL)  # the server and its workers, at once
        else:
            wait_until(lambda: current_step(page) > 500, 90)
            process.send_signal(signal.SIGTERM)
        process.wait(60)
    saved = checkpoint_step(home)
    assert saved > 0
    state = resume.load(next((home / "artifacts").glob("*/artifacts/checkpoints/resume.safetensors")))
    if how == "shutdown":
        assert state.extra["status"] == "interrupted"  # written by the shutdown itself: no step is lost

    with streamlit_process(env, tmp_path / "second.log") as (_, url2):
        page.goto(url2)  # the same browser (its cookie), a new server at a new address: the link's path and query
        link2 = url2 + link[link.index("/", len("http://")) :]
        step = reopen_interrupted(page, link2)
        assert step == saved
        # Every page works on the restored weights.
        for name in ("Train vs dev", "Embeddings", "Inside the network"):
            go_to(page, name)
            no_exception(page)
        go_to(page, "Sample")
        button(page, "btn_sample").click()
        page.get_by_text("new names (not in the training set)").wait_for()
        no_exception(page)

        button(page, "btn_resume").click()
        wait_until(lambda: "running" in status_text(page) and current_step(page) > step, 90)

        go_to(page, "Runs")
        page.locator(".st-key-runs_page_table").wait_for()
        page.get_by_text("1 run. Click a column's header").wait_for()  # the grid itself draws on a canvas
        no_exception(page)
        if SHOTS:
            page.screenshot(path=str(SHOTS / "restart_runs.png"), full_page=True)
        # The same run in the store, going on (its step tag follows within a flush, ~2 s).
        wait_until(lambda: [(r.status, r.step > step) for r in RunStore().runs()] == [("running", True)], 30)
        button(page, "btn_stop").click()
        wait_until(lambda: "stopped" in status_text(page), 30)
