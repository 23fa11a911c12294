"""Issue 17, dashboard: a run that tells the truth and teaches (honest endings and advice, what a loaded model
is, distinct samples, the sidebar's small lies, what differs from the lecture), driven through AppTest."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import streamlit as st
from test_app import (  # noqa: F401 (fixtures)
    TINY,
    app,
    clean_caches,
    fresh_registry,
    run_of,
    texts,
    train_tiny,
    wait_for,
)

from dashboard import advice, models, sidebar, state, sweep_runs
from mlp_core import cli, lecture_diff
from mlp_core.config import PRESETS, TrainConfig, to_dict
from mlp_core.data import builtin_words, make_dataset
from mlp_core.job import DIVERGED, PAUSED, RUNNING
from mlp_core.model import build_model


# ---------------------------------------------------------------------- 1. honest endings
def test_a_run_that_ends_worse_than_guessing_ends_diverged_with_the_learning_rate_advice():
    at = app()
    at = train_tiny(at, hp_lr=100.0)
    snap = run_of(at).job.snapshot()
    assert snap.status == DIVERGED, snap.status
    assert "worse than guessing" in snap.message and "learning rate" in snap.message
    # Sidebar and page: an error, never a green "Finished".
    assert "worse than guessing" in texts(at.sidebar.error)
    assert not at.sidebar.success
    # The table of runs says so too.
    assert run_of(at).history()[-1].status == DIVERGED
    # Train vs dev reads the whole picture: worse than guessing is the learning rate, not overfitting.
    at.switch_page("pages/3_train-vs-dev.py").run()
    assert not at.exception
    verdict = texts(at.error)
    assert "worse than guessing uniformly" in verdict and "learning rate" in verdict
    assert "overfit" not in texts(at.warning) + texts(at.success)


def test_the_verdict_reads_the_whole_picture():
    # The report's adamw run at lr 100: a gap of 1.92 nats between two failures is not overfitting.
    level, text = advice.fit_advice(100.85, 102.77, 3.30, 2.45)
    assert level == "error" and "learning rate" in text and "overfit" not in text.replace("not overfitting", "")
    assert advice.fit_advice(1.90, 2.10, 3.30, 2.45)[0] == "warning"  # a real gap: overfitting
    assert "far from trained" in advice.fit_advice(2.80, 2.82, 3.30, 2.45)[1]
    assert advice.fit_advice(2.10, 2.15, 3.30, 2.45)[0] == "success"


# ---------------------------------------------------------------------- 3. a loaded model says what it is
def test_a_loaded_model_says_what_it_is_on_train_and_train_vs_dev():
    """The Sweep page's "Load best model" path: a trained model starts a job at its own step, with no history."""
    at = app()
    run = run_of(at)
    config = TrainConfig(emb_dim=2, hidden=16, steps=300, eval_every=100, init="scaled", seed=1, device="cpu")
    ds = make_dataset(builtin_words()[:300], 3, 42)
    model = build_model(ds.vocab.size, config)
    job = state.registry().start_new_job(
        run.run_id, config, ds, model, start_step=300, dataset_label="best of sweep-test"
    )
    assert job.wait(60)
    wait_for(lambda: job.snapshot().final_losses is not None)
    at.run()
    page = texts(at.info)
    assert "first steps are under way" not in page
    assert "loaded model" in page and "300 steps" in page and "dev **" in page
    assert at.metric[2].value != "—"  # the dev loss it has
    at.switch_page("pages/3_train-vs-dev.py").run()
    assert not at.exception
    page = texts(at.info)
    assert "No evaluation yet" not in page and "loaded model" in page


# ---------------------------------------------------------------------- 5. samples counted by distinct name
def test_sample_counts_distinct_names_and_says_how_many_repeat():
    at = train_tiny(app())
    at.switch_page("pages/4_sample.py").run()
    at.slider(key=state.SAMPLE_TEMPERATURE).set_value(0.05)
    at.button(key="btn_sample").click().run()
    assert not at.exception
    samples = at.session_state[state.SAMPLES][1]
    names = [s.name for s in samples]
    distinct = set(names)
    assert len(distinct) < len(names)  # at T = 0.05 a tiny model repeats itself
    new = {s.name for s in samples if s.is_new}
    metric = next(m for m in at.metric if "new names" in m.label)
    assert metric.value.startswith(f"{len(new)} / {len(distinct)} ")
    top = max(distinct, key=names.count)
    assert f"{len(names) - len(distinct)} repeat" in texts(at.caption) and f"'{top}' ×{names.count(top)}" in texts(
        at.caption
    )


# ---------------------------------------------------------------------- 8. the sidebar's small lies
def test_after_step_x1_the_sidebar_promises_no_time_left():
    at = app()
    for key, value in TINY.items():
        at.number_input(key=key).set_value(value)
    at.number_input(key=state.STEP_N).set_value(1)
    at.button(key="btn_step").click().run()
    job = run_of(at).job
    wait_for(lambda: job.snapshot().status == PAUSED and job.snapshot().step == 1)
    at.run()
    status = texts(at.sidebar.markdown)
    assert "rough first figure" in status and "paused, 299 steps to go" in status
    assert "left" not in status  # one step's speed times 299 steps is no forecast, and a paused run spends nothing


def test_a_run_that_stops_early_fills_the_sidebars_bar_and_says_where_it_ended():
    # Evaluations every 10 steps with patience 1: the first evaluation that is no better ends the run.
    at = train_tiny(app(), hp_eval_every=10, hp_early_stop_patience=1, hp_lr=1e-9)  # a run that learns nothing
    snap = run_of(at).job.snapshot()
    assert snap.status == "finished" and snap.step < 300, "the run did not stop early"
    bar = at.sidebar.get("progress")[0].proto
    assert bar.value == 100  # a finished run's bar is full (it stood at step / planned: "finished" beside 7 %)
    assert f"step {snap.step:,} (ended before the planned 300)" in bar.text
    running = SimpleNamespace(status=RUNNING, step=75, total_steps=300, progress=0.25)
    assert advice.progress_status(running, "#1") == (0.25, "**running** #1 · step 75 / 300")


def test_the_sidebar_labels_a_scheduled_learning_rate_as_the_current_one():
    snap = SimpleNamespace(
        status=RUNNING,
        step=4000,
        total_steps=5000,
        elapsed=30.0,
        lr=10.0,
        seconds_per_step=0.001,
        eta_seconds=1.0,
        config=TrainConfig(lr=100.0, steps=5000, device="cpu"),
    )
    text = sidebar._speed(snap)
    assert "lr now **10** (set: 100; the step schedule)" in text


def test_a_checkpoints_missing_losses_are_said_in_words():
    rows = dict(models.checkpoint_rows({"step": 3000, "train_loss": None, "dev_loss": 2.276912345, "lr": 0.1}))
    assert "None" not in rows.values()
    assert rows["train_loss"].startswith("not recorded") and rows["dev_loss"] == "2.2769" and rows["step"] == "3,000"


def chart(at, key: str) -> dict:
    """The plotly spec of the chart with this widget key."""
    return json.loads(next(c for c in at.get("plotly_chart") if c.proto.id.endswith(key)).proto.spec)


def diff_table(at):
    """The rows of "What differs from the lecture"."""
    return next(d.value for d in at.dataframe if "change" in d.value.columns)


# ---------------------------------------------------------------------- learner features
def test_every_setting_a_preset_uses_has_a_control():
    at = app()
    for name, preset in PRESETS.items():
        at.button(key=f"preset_{name}").click().run()
        shown = {w.key for kind in ("number_input", "slider", "selectbox") for w in at.sidebar.get(kind)}
        used = {f for f, v in to_dict(preset).items() if v != getattr(TrainConfig(), f) and f != "device"}
        assert {f"hp_{f}" for f in used} <= shown, (name, {f"hp_{f}" for f in used} - shown)
    assert at.selectbox(key="hp_precision").value == PRESETS["best"].precision
    at.button(key="preset_strong").click().run()
    assert at.selectbox(key="hp_precision").value == "bf16" and at.query_params["precision"] == "bf16"


def test_train_plots_the_learning_rate_schedule_with_the_current_step():
    at = train_tiny(app())  # the lecture's step schedule: lr 0.1, then 0.01 from step 150
    spec = chart(at, "lr_schedule_chart")
    line, now = spec["data"][0], spec["data"][1]
    assert "step schedule" in line["name"]
    assert "step 300" in now["name"] and "lr 0.01" in now["name"]  # the end of the run, after the drop
    assert max(_values(line["y"])) == pytest.approx(0.1) and min(_values(line["y"])) == pytest.approx(0.01)


def test_before_start_train_shows_the_schedule_the_settings_will_train_with():
    """Before Start, the Train page draws the lr schedule of the sidebar's settings (and so loads plotly.js in the
    browser before the click, not after it); a change of the settings redraws it, with no "now" marker."""
    at = app()
    assert run_of(at).job is None
    spec = chart(at, "lr_schedule_preview")
    assert len(spec["data"]) == 1 and max(_values(spec["data"][0]["y"])) == pytest.approx(TrainConfig().lr)
    at.sidebar.number_input(key="hp_lr").set_value(0.05).run()
    spec = chart(at, "lr_schedule_preview")
    assert max(_values(spec["data"][0]["y"])) == pytest.approx(0.05)
    assert "peak lr 0.05" in spec["data"][0]["name"]


def test_the_page_run_right_after_start_keeps_the_charts_place_and_the_next_refresh_draws_them(monkeypatch):
    """The first view of a young run draws no Plotly chart (in Chromium, creating two charts in the frame of the
    whole page's redraw held the status's first step back ~0.3 s): the loss chart's place is kept, its curve
    comes with the next refresh; the lr chart waits while the run is young."""
    monkeypatch.setattr(state, "YOUNG_S", 600.0)  # young for the whole test, however loaded the machine
    at = app()
    for key, value in {**TINY, "hp_steps": 1_000_000, "hp_eval_every": 1_000_000}.items():
        at.number_input(key=key).set_value(value)  # no dev point: the run stays young
    at.button(key="btn_start").click().run()
    if run_of(at).job is None:  # a loaded machine timed it as a very long run: confirm, as a user would
        at.button(key="btn_start").click().run()
    job = run_of(at).job
    try:
        if "first steps are under way" in texts(at.info):  # no step within Start's wait (a loaded machine)
            wait_for(lambda: job.snapshot().step > 0)
            at.run()  # the first view with a step to draw
        keys = [c.proto.id for c in at.get("plotly_chart")]
        assert not any(k.endswith(("train_chart", "lr_schedule_chart", "lr_schedule_preview")) for k in keys), keys
        assert not at.exception
        at.run()  # ... and the next view draws the curve
        assert any(c.proto.id.endswith("train_chart") for c in at.get("plotly_chart"))
    finally:
        job.stop()


def _values(array) -> list[float]:
    """A plotly array from a spec: a list, or numpy's base64 typed array."""
    if isinstance(array, dict):
        import base64

        import numpy as np

        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def test_the_settings_copy_as_a_cli_command_and_a_notebook_cell_that_run(tmp_path):
    at = app()
    at.button(key="preset_fast").click().run()
    codes = [c.value for c in at.code]
    assert "python -m mlp_core train --preset fast" in codes
    cell = next(c for c in codes if "Trainer(config, ds)" in c)
    assert "optimizer: SGD, lr 0.1 -> AdamW, lr 0.03" in cell
    # The cell trains what it says (shortened here: a tiny model on a few names).
    words = tmp_path / "w.txt"
    words.write_text("\n".join(builtin_words()[:200]))
    small = PRESETS["fast"].replace(steps=20, eval_every=10, hidden=8, device="cpu")
    scope: dict = {}
    exec(lecture_diff.notebook_cell(small, str(words)), scope)
    assert scope["trainer"].step == 20
    # The CLI command parses to exactly these settings.
    args = cli.build_parser().parse_args(lecture_diff.cli_command(small).split()[3:])
    assert cli.config_from_args(args) == small


def test_what_differs_from_the_lecture_lists_each_change_and_trains_an_ablation():
    at = app()
    at.button(key="preset_lecture").click().run()
    assert "lecture's own settings" in texts(at.success) and "2.1218" in texts(at.success)
    at = train_tiny(at)  # TINY: emb 2, hidden 16 and 300 steps differ from the lecture
    frame = diff_table(at)
    assert list(frame["change"]) == ["embedding", "hidden size", "steps"]
    assert set(frame["dev without it"]) == {"not trained yet"}
    at.selectbox(key="ablate_choice").set_value("hidden size").run()
    at.button(key="btn_ablate").click().run()
    assert not at.exception, at.exception
    job = run_of(at).job
    assert job.config.hidden == 200 and job.config.emb_dim == 2  # one change reverted, the others kept
    assert job.wait(120)
    wait_for(lambda: run_of(at).summaries.get(run_of(at).job_label) is not None)
    wait_for(lambda: job.snapshot().final_losses is not None)
    at.run()
    frame = diff_table(at)
    row = frame[frame["change"] == "hidden size"].iloc[0]
    assert row["dev without it"] != "not trained yet" and "(" in row["dev without it"]  # its dev and the difference


# ---------------------------------------------------------------------- 2. sweeps that cannot answer say so
def write_sweep(root, devs: list[float], steps: int = 1500) -> None:
    """A finished sweep's summary.json as mlp_core.sweep writes it (CLI sweeps in the folder are everyone's)."""
    d = root / "sweep-test"
    d.mkdir(parents=True)
    trials = {
        f"t{i}": {
            "id": f"t{i}",
            "status": "completed",
            "steps": steps,
            "config": {"lr": 0.01 * (i + 1)},
            "dev_loss": dev,
            "curve": [[steps // 2, dev + 0.3, 1.0], [steps, dev, 2.0]],
        }
        for i, dev in enumerate(devs)
    }
    best = min(trials.values(), key=lambda t: t["dev_loss"])
    summary = {
        "state": "finished",
        "started": 0.0,
        "settings": {"preset": "fast", "trials": len(devs), "steps": steps, "params": ["lr=0.01:0.1:log"]},
        "trials": trials,
        "best": {"id": best["id"], "dev_loss": best["dev_loss"], "config": best["config"], "steps": steps},
    }
    (d / "summary.json").write_text(json.dumps(summary))


def sweep_page(at):
    at.switch_page("pages/7_sweep.py").run()
    assert not at.exception, at.exception
    return " | ".join(str(e.value) for kind in ("markdown", "info", "warning", "error") for e in getattr(at, kind))


def test_a_sweep_of_short_trials_says_it_cannot_answer(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_runs, "SWEEPS_ROOT", tmp_path / "sweeps")
    st.cache_resource.clear()
    write_sweep(tmp_path / "sweeps", [3.1039, 3.81, 4.32, 5.18])
    text = sweep_page(app())  # the lecture's settings: 200,000 steps
    assert "1,500 steps" in text and "133x fewer" in text
    assert "3 of 4 trials ended worse than guessing" in text
    assert "No reference yet" in text


def test_a_sweep_that_beats_nothing_says_so(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_runs, "SWEEPS_ROOT", tmp_path / "sweeps")
    st.cache_resource.clear()
    write_sweep(tmp_path / "sweeps", [3.5, 3.81], steps=300)
    at = train_tiny(app())  # the reference: the sidebar's settings, trained (dev ~3.18)
    text = sweep_page(at)
    assert "No trial beats the reference" in text and "Reference**, the sidebar's own settings" in text
    assert at.button(key="btn_sweep_use").label == "Use these settings anyway"
    lines = [a["text"] for a in chart(at, "sweep_curves_chart")["layout"]["annotations"]]
    assert any(t.startswith("uniform guessing") for t in lines) and "your run (sidebar)" in lines
    assert any("bigram" in t for t in lines) and any("lecture" in t for t in lines)


def test_the_lr_sweep_range_follows_the_optimizer_until_typed():
    at = app()
    at.switch_page("pages/1_lr-sweep.py").run()
    assert (at.number_input(key=state.SWEEP_FROM).value, at.number_input(key=state.SWEEP_TO).value) == (-3.0, 0.0)
    at.selectbox(key="hp_optimizer").set_value("adamw").run()
    assert (at.number_input(key=state.SWEEP_FROM).value, at.number_input(key=state.SWEEP_TO).value) == (-5.0, -1.0)
    at.number_input(key=state.SWEEP_FROM).set_value(-4.5).run()  # the user's own range stays
    at.selectbox(key="hp_optimizer").set_value("sgd").run()
    assert at.number_input(key=state.SWEEP_FROM).value == -4.5
