"""Issue 9, dashboard: what a first-time user tripped over, driven through Streamlit's AppTest.

Controls that do what they say (out-of-range numbers, heavy runs, the run's life, two viewers of one
run), charts that cannot mislead (reference lines of the data in use, best dev "at step N"), guard rails
(early stopping, best-dev weights) and the small things that read as bugs (uploads, tiny data).
"""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
from test_app import (  # noqa: F401 (fixtures)
    TINY,
    app,
    clean_caches,
    fresh_registry,
    run_of,
    start_long_tiny,
    texts,
    train_tiny,
    wait_for,
)

from dashboard import models, sidebar, state
from mlp_core.checkpoint import checkpoint_bytes, load_checkpoint
from mlp_core.config import BOUNDS
from mlp_core.history import DecimatedSeries

OCTET = "application/octet-stream"
# Every number the sidebar takes, with a value just outside its range.
NUMERIC = [n for n in BOUNDS if n not in ("stop_on_divergence",)]


def number_input(at, name: str):
    """The field's number input, or None (a slider cannot leave its range; a hidden field is not on screen)."""
    try:
        return at.number_input(key=state.HP + name)
    except KeyError:
        return None


# ---------------------------------------------------------------------------- A1: out-of-range numbers
@pytest.mark.parametrize("name, value", [("lr", 1000.0), ("hidden", 100_000), ("batch_size", 0), ("steps", -5)])
def test_an_out_of_range_number_refuses_start_and_names_the_field_and_its_range(name, value):
    at = app()
    at.number_input(key=state.HP + name).set_value(value).run()
    label = state.FIELD_LABELS[name]
    b = BOUNDS[name]
    error = texts(at.sidebar.error)
    assert label in error and "must be between" in error  # right under the field, while it is on screen
    at.button(key="btn_start").click().run()
    refusal = texts(at.sidebar.error)
    assert f"Not started: {label} must be between" in refusal
    assert f"{b.high:,g}" in refusal.replace(",", "") or f"{int(b.high):,}" in refusal
    assert run_of(at).job is None  # nothing trained: not the previous value, not a clamped one
    assert at.number_input(key=state.HP + name).value == value  # the screen still shows what was typed
    assert not at.exception


def test_every_numeric_field_out_of_range_is_refused():
    at = app()
    checked = 0
    for name in NUMERIC:
        widget = number_input(at, name)
        if widget is None:
            continue
        checked += 1
        b = BOUNDS[name]
        widget.set_value(b.high * 10 + 1 if b.high < 1e15 else -1).run()
        at.button(key="btn_start").click().run()
        assert state.FIELD_LABELS[name] in texts(at.sidebar.error), name
        assert run_of(at).job is None, name
        number_input(at, name).set_value(b.low).run()  # back in range for the next field
    assert checked >= 10 and not at.exception


def test_the_other_number_inputs_refuse_out_of_range_values_too():
    at = app(data="builtin")
    at.number_input(key=state.STEP_N).set_value(5_000_000).run()
    at.button(key="btn_step").click().run()
    assert "Steps per click must be between 1 and 1,000,000; it is 5,000,000" in texts(at.sidebar.error)
    assert run_of(at).job is None
    at.switch_page("pages/1_lr-sweep.py").run()
    at.number_input(key=state.SWEEP_STEPS).set_value(10).run()
    at.button(key="btn_sweep").click().run()
    assert "Not started: Steps (one per lr) must be between 20 and 5,000; it is 10" in texts(at.main.error)
    assert run_of(at).sweep is None
    train_tiny(at)
    job = run_of(at).job
    raw = checkpoint_bytes(job.current_model(), job.config, job.dataset.vocab, meta={"step": 300})
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key=state.CKPT_UPLOAD).set_value(("mine.safetensors", raw, OCTET)).run()
    at.number_input(key=state.CKPT_UNTIL).set_value(20_000_000).run()
    at.button(key="btn_ckpt_train").click().run()
    assert "Train until step must be between 301 and 10,000,000; it is 20,000,000" in texts(at.main.error)
    assert run_of(at).job is job


def test_back_in_range_the_run_trains_exactly_what_is_on_screen():
    at = app()
    at.number_input(key="hp_lr").set_value(1000.0).run()
    at.number_input(key="hp_lr").set_value(0.05).run()
    train_tiny(at)
    assert run_of(at).job.config.lr == 0.05


# ---------------------------------------------------------------------------- A2: heavy runs
def test_a_very_long_run_is_announced_before_it_starts():
    at = app()
    for key, value in {**TINY, "hp_steps": 10_000_000}.items():
        at.number_input(key=key).set_value(value)
    at.button(key="btn_start").click().run()
    assert run_of(at).job is None  # the first click only warns
    warning = texts(at.sidebar.warning)
    assert "This run would take about" in warning and "Press **Start** again" in warning
    at.button(key="btn_start").click().run()
    assert run_of(at).job is not None and run_of(at).job.snapshot().active


def test_status_says_the_first_steps_are_under_way_then_time_per_step_and_eta():
    base = dict(status="running", steps_per_sec=0.0, elapsed=75.0, lr=0.1, step=0, total_steps=1000)
    first = SimpleNamespace(**base, seconds_per_step=math.nan, eta_seconds=math.nan, active=True)
    assert "first steps under way" in sidebar._speed(first) and "1:15" in sidebar._speed(first)
    slow = SimpleNamespace(**{**base, "step": 10}, seconds_per_step=2.5, eta_seconds=2475.0, active=True)
    text = sidebar._speed(slow)
    assert "2.5 s** per step" in text and "41:15" in text and "left" in text


# ---------------------------------------------------------------------------- A3: the run's life
def test_labels_enabled_states_and_tooltips_follow_the_runs_life():
    at = app()
    assert not any(b.key == "btn_reset" for b in at.sidebar.button)  # "Reset" did not do what it said: gone
    assert "new run from step 0" in at.button(key="btn_start").help
    assert "for good" in at.button(key="btn_stop").help and "sampling and download" in at.button(key="btn_stop").help
    start_long_tiny(at)
    run = run_of(at)
    job = run.job
    wait_for(lambda: job.snapshot().step > 0)
    at.run()
    assert not at.button(key="btn_pause").disabled and at.button(key="btn_resume").disabled
    at.button(key="btn_pause").click().run()
    wait_for(lambda: job.snapshot().status == "paused")
    at.run()
    assert at.button(key="btn_pause").disabled and not at.button(key="btn_resume").disabled
    at.button(key="btn_stop").click().run()
    wait_for(lambda: job.snapshot().status == "stopped")
    at.run()
    for key in ("btn_pause", "btn_resume", "btn_stop", "btn_step"):
        assert at.button(key=key).disabled, key  # stopped is final: nothing continues it
    assert not at.button(key="btn_start").disabled
    assert run.job is job and job.snapshot().status == "stopped"


# ---------------------------------------------------------------------------- A4: two viewers of one run
def test_a_shared_link_only_watches_and_never_drives():
    """A link lets its holder watch a run, never drive it (the run belongs to the browser that started it)."""
    first = app()
    job = start_long_tiny(first)
    wait_for(lambda: job.snapshot().step > 0)
    second = app(**first.query_params)  # the link, opened in another browser
    assert second.session_state[state.RUN_ID] == first.session_state[state.RUN_ID]
    assert "you are watching it" in texts(second.sidebar.warning)
    for key in ("btn_pause", "btn_stop", "btn_step"):
        assert second.button(key=key).disabled, key
    assert not [b for b in second.sidebar.button if b.key == "btn_take_over"]  # no way to take the run
    first.run()
    assert not first.button(key="btn_pause").disabled  # the first tab still drives
    first.button(key="btn_pause").click().run()
    wait_for(lambda: job.snapshot().status == "paused")
    second.run()
    assert "paused" in second.sidebar.get("progress")[0].text  # the watcher sees the real state
    assert second.button(key="btn_resume").disabled
    first.button(key="btn_stop").click().run()
    assert not first.exception and not second.exception


def test_a_watchers_start_is_a_run_of_its_own_and_the_watched_run_goes_on():
    first = app()
    job = start_long_tiny(first)
    second = app(**first.query_params)
    second.button(key="btn_start").click().run()
    assert second.session_state[state.RUN_ID] != first.session_state[state.RUN_ID]
    assert run_of(second).job is not job and run_of(first).job is job
    assert job.snapshot().status == "running"
    assert second.query_params["run"] == second.session_state[state.RUN_ID]


# ---------------------------------------------------------------------------- B6, B9a: the Train page
def chart_spec(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def test_reference_lines_belong_to_the_data_in_use():
    at = app(data="builtin")
    train_tiny(at)
    labels = [a["text"] for a in chart_spec(at)["layout"]["annotations"]]
    assert any(t.startswith("bigram (this data)") for t in labels) and any("uniform" in t for t in labels)
    assert not any("2.17" in t or "lecture" in t for t in labels)  # the lecture's numbers mean nothing here


@pytest.mark.lecture_data
def test_the_lectures_line_shows_on_the_lectures_data():
    at = train_tiny(app())
    labels = [a["text"] for a in chart_spec(at)["layout"]["annotations"]]
    assert any("MLP dev (lecture) 2.17" in t for t in labels)


def test_best_dev_says_at_step_n():
    at = train_tiny(app(data="builtin"))
    best = next(m for m in at.main.metric if m.label == "best dev")
    assert best.proto.delta.startswith("at step ")


# ---------------------------------------------------------------------------- C10: guard rails
def test_early_stopping_and_auto_stop_are_in_the_sidebar_and_reach_the_run():
    at = app(data="builtin")
    at.number_input(key="hp_early_stop_patience").set_value(3).run()
    at.selectbox(key="hp_stop_on_divergence").set_value(1).run()
    assert at.query_params["early_stop_patience"] == "3"
    train_tiny(at)
    config = run_of(at).job.config
    assert config.early_stop_patience == 3 and config.stop_on_divergence == 1


def test_an_alert_offers_to_stop_the_run(monkeypatch):
    at = app(data="builtin")
    job = start_long_tiny(at)
    real = job.snapshot

    monkeypatch.setattr(
        job, "snapshot", lambda: dataclasses.replace(real(), alert="the training loss has been above 3.30")
    )
    at.run()
    assert "The training loss has been above 3.30" in texts(at.main.warning)
    assert "The training loss has been above 3.30" in texts(at.sidebar.warning)
    at.button(key="btn_alert_stop").click().run()
    monkeypatch.setattr(job, "snapshot", real)
    wait_for(lambda: job.snapshot().status == "stopped")


# ---------------------------------------------------------------------------- C11: best-dev weights
def test_best_dev_weights_download_sample_and_continue():
    at = train_tiny(app(data="builtin"))
    run = run_of(at)
    job = run.job
    snap = job.snapshot()
    at.switch_page("pages/5_checkpoints.py").run()
    assert f"at step **{snap.best_step:,}**" in texts(at.markdown)
    best = load_checkpoint(models.job_checkpoint(run, job, run.job_label, run.dataset_label, best=True))
    assert best.meta["step"] == snap.best_step and best.meta["dev_loss"] == pytest.approx(snap.best_dev)
    for name, tensor in job.best_model().state_dict().items():
        assert (best.model.state_dict()[name] == tensor).all()
    at.button(key="btn_best_sample").click().run()
    at.switch_page("pages/4_sample.py").run()
    assert at.radio(key=state.SAMPLE_SOURCE).value == models.BEST
    assert f"best-dev weights (dev {snap.best_dev:.4f} at step {snap.best_step:,})" in texts(at.caption)
    at.button(key="btn_sample").click().run()
    assert not at.exception and len(at.dataframe[0].value) == 20
    at.switch_page("pages/5_checkpoints.py").run()
    at.button(key="btn_best_continue").click().run()
    new = run.job
    assert new is not job and run.job_label == "#2"
    assert new.wait(60) and new.snapshot().step == job.config.steps
    assert "from step" in texts(at.success)


def test_a_download_says_the_step_of_the_weights_it_holds_not_of_a_newer_snapshot(monkeypatch):
    """The worker sends big models' weights at most every 0.5 s: the snapshot's step can be ahead of them."""
    at = train_tiny(app(data="builtin"))
    run = run_of(at)
    job = run.job
    real = job.snapshot()
    ahead = dataclasses.replace(real, step=real.step + 500, best_step=real.step + 500, best_dev=0.5)
    monkeypatch.setattr(job, "snapshot", lambda: ahead)
    current = load_checkpoint(models.job_checkpoint(run, job, run.job_label, run.dataset_label))
    assert current.meta["step"] == job.current_weights().step == real.step
    best = load_checkpoint(models.job_checkpoint(run, job, run.job_label, run.dataset_label, best=True))
    assert best.meta["step"] == job.best_weights().step == real.best_step
    assert best.meta["dev_loss"] == pytest.approx(real.best_dev)  # the loss of those weights, not the newer 0.5


# ---------------------------------------------------------------------------- C12: small things
def test_a_text_file_as_checkpoint_says_so_and_the_previous_one_is_labelled():
    at = train_tiny(app(data="builtin"))
    job = run_of(at).job
    raw = checkpoint_bytes(job.current_model(), job.config, job.dataset.vocab, meta={"step": 300})
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key=state.CKPT_UPLOAD).set_value(("good.safetensors", raw, OCTET)).run()
    at.file_uploader(key=state.CKPT_UPLOAD).set_value(("names.txt", b"emma\nolivia\nava\n" * 50, "text/plain")).run()
    assert "Cannot load names.txt: not a safetensors checkpoint" in texts(at.error)
    assert "Still loaded: **good.safetensors**" in texts(at.warning) and "names.txt was not loaded" in texts(at.warning)


def test_start_after_a_rejected_upload_says_what_is_wrong_with_that_file():
    at = app()
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    at.file_uploader(key=state.DATA_UPLOAD).set_value(("good.txt", b"anna\nbob\ncarla\n" * 20, "text/plain")).run()
    assert run_of(at).upload[0] == "good.txt"
    at.file_uploader(key=state.DATA_UPLOAD).set_value(("bad.txt", b"\xff\xfe\x00broken", "text/plain")).run()
    at.button(key="btn_start").click().run()
    refusal = texts(at.sidebar.error)
    assert "Not started: Upload rejected: bad.txt" in refusal and "no file uploaded yet" not in refusal
    assert run_of(at).job is None  # and never the previous file in its place


def test_a_tiny_upload_gets_a_warning():
    words = "".join(f"{n}\n" for n in ["ann", "bob", "cat", "dan", "eve", "fay", "gus", "hal"] * 3).encode()
    at = app()
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    at.file_uploader(key=state.DATA_UPLOAD).set_value(("tiny.txt", words, "text/plain")).run()
    warning = texts(at.sidebar.warning)
    assert "dev word" in warning and "noise" in warning


def test_right_after_start_no_empty_chart_is_drawn(monkeypatch):
    at = app(data="builtin")
    job = start_long_tiny(at)
    real = job.snapshot
    empty = dataclasses.replace(real(), step=0, train_history=DecimatedSeries().view(), evals=())
    monkeypatch.setattr(job, "snapshot", lambda: empty)
    at.run()
    assert not at.get("plotly_chart")
    assert "first steps are under way" in texts(at.main.info)
