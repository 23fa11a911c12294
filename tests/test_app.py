"""The Streamlit dashboard, driven headless through Streamlit's AppTest: every page, the controls, the URL."""

import json
import math
import re
import time

import pytest
import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

from dashboard import analysis, layout, models, state
from dashboard.state import DataChoice, Settings
from mlp_core.checkpoint import checkpoint_bytes, load_checkpoint
from mlp_core.config import PRESETS, TrainConfig
from mlp_core.model import build_model

# Every page in the navigation, by file, with the title it shows (new pages are covered as they are added).
PAGES = {page.path: page.heading for page in layout.PAGES}
# A model small enough that 300 steps take well under a second on one CPU thread.
TINY = {"hp_emb_dim": 2, "hp_hidden": 16, "hp_batch_size": 32, "hp_steps": 300, "hp_eval_every": 100}


@pytest.fixture(autouse=True)
def fresh_registry():
    """AppTest instances share st.cache_resource: give each test its own empty run registry."""
    state.registry.clear()
    yield
    reg = state.registry()
    reg.stop_reaper()
    reg.release_all()
    state.registry.clear()


@pytest.fixture(scope="module", autouse=True)
def clean_caches():
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def app(**query) -> AppTest:
    at = AppTest.from_file("../app.py", default_timeout=60)
    at.query_params = dict(query)
    return at.run()


def run_of(at: AppTest):
    return state.registry().get(at.session_state[state.RUN_ID])


def wait_for(predicate, timeout: float = 60.0) -> None:
    """Poll until predicate() holds; the timeout only guards against a hang (not a timing test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def train_tiny(at: AppTest, **overrides) -> AppTest:
    """Set a tiny config in the sidebar, press Start, wait for the run to end, and rerun."""
    for key, value in {**TINY, **overrides}.items():
        at.number_input(key=key).set_value(value)
    at.button(key="btn_start").click().run()
    job = run_of(at).job
    assert job is not None, [e.value for e in at.error]
    assert job.wait(120)
    wait_for(lambda: run_of(at).summaries.get(run_of(at).job_label) is not None)
    return at.run()


def start_long_tiny(at: AppTest):
    """Set the tiny config with a million steps (it trains through the whole test), press Start; its job."""
    for key, value in {**TINY, "hp_steps": 1_000_000}.items():
        at.number_input(key=key).set_value(value)
    at.button(key="btn_start").click().run()
    if run_of(at).job is None and "Press **Start** again" in texts(at.sidebar.warning):
        # On a loaded machine a million steps can be timed over the "very long run" threshold: confirm, as a
        # user would (the test is about the run, not about that question).
        at.button(key="btn_start").click().run()
    return run_of(at).job


def texts(elements) -> str:
    return " | ".join(str(e.value) for e in elements)


def test_every_page_renders_before_any_run():
    at = app()
    assert not at.exception
    assert at.title[0].value == "Train"
    assert "press **Start**" in texts(at.info)
    for path, title in PAGES.items():
        at.switch_page(path).run()
        assert not at.exception, (path, at.exception)
        assert at.title[0].value == title
    # The sidebar is on every page, with every hyperparameter and the run controls.
    keys = {w.key for w in at.sidebar.number_input} | {w.key for w in at.sidebar.slider}
    keys |= {w.key for w in at.sidebar.selectbox}
    for name in ("block_size", "emb_dim", "hidden", "hidden_layers", "batch_size", "init", "optimizer", "lr"):
        assert f"hp_{name}" in keys
    for name in ("schedule", "decay_at", "decay_factor", "warmup_steps", "dropout", "weight_decay", "steps"):
        assert f"hp_{name}" in keys
    for name in ("eval_every", "seed", "split_seed"):
        assert f"hp_{name}" in keys
    buttons = {b.key for b in at.sidebar.button}
    assert {"btn_start", "btn_pause", "btn_resume", "btn_stop", "btn_step"} <= buttons
    # No browser-side max (it would hide an out-of-range number): the range is in the tooltip, checked at Start.
    assert "tanh" in at.number_input(key="hp_hidden").help and "1 to 4,096" in at.number_input(key="hp_hidden").help


def test_every_pages_heading_is_drawn_before_its_sidebar(monkeypatch):
    """A page switch shows its heading first: the ~60 sidebar widgets (tens of ms to build and send) come after
    it, not before (bench/bench_latency.py times the switch to the heading). Proved by a sidebar that fails."""
    from dashboard import sidebar

    at = app()

    def broken(*args, **kwargs):
        raise RuntimeError("sidebar failed")

    monkeypatch.setattr(sidebar, "render", broken)
    for path, title in PAGES.items():
        at.switch_page(path).run()
        assert at.exception and "sidebar failed" in at.exception[0].value, path
        assert [t.value for t in at.title] == [title], path


def test_presets_fill_the_widgets_and_the_url():
    at = app()
    at.button(key="preset_fast").click().run()
    fast = PRESETS["fast"]
    assert at.selectbox(key="hp_optimizer").value == "adamw"
    assert at.number_input(key="hp_steps").value == fast.steps
    assert at.number_input(key="hp_lr").value == pytest.approx(fast.lr)
    assert at.query_params["optimizer"] == "adamw" and at.query_params["steps"] == str(fast.steps)
    at.button(key="preset_lecture").click().run()
    assert at.selectbox(key="hp_optimizer").value == "sgd"
    assert set(at.query_params) == {"run"}  # the lecture setup is the default: a bare link reproduces it


def test_query_params_round_trip_and_bad_values_warn():
    at = app(lr="0.05", block_size="5", steps="abc", hidden="999999", years="1990-1999", sex="X", data="nope")
    assert not at.exception
    assert at.number_input(key="hp_lr").value == pytest.approx(0.05)
    assert at.slider(key="hp_block_size").value == 5
    assert at.number_input(key="hp_steps").value == TrainConfig().steps
    assert at.number_input(key="hp_hidden").value == TrainConfig().hidden
    assert at.session_state[state.DATA_YEARS] == (1990, 1999)
    warnings = texts(at.warning)
    assert "steps='abc'" in warnings and "hidden='999999'" in warnings and "sex='X'" in warnings
    assert "data='nope'" in warnings
    q = at.query_params
    assert q["lr"] == "0.05" and q["block_size"] == "5" and q["years"] == "1990-1999"
    assert "steps" not in q and "hidden" not in q and len(q["run"]) >= 20
    # The URL of one session sets up another identically.
    again = app(**{k: v for k, v in q.items() if k != "run"})
    assert again.number_input(key="hp_lr").value == pytest.approx(0.05) and not again.warning


@pytest.mark.parametrize(
    "config",
    [TrainConfig(), PRESETS["best"], TrainConfig(lr=3e-5, weight_decay=0.25, dropout=0.15, device="cpu")],
)
def test_settings_round_trip_exactly(config):
    settings = Settings(config, DataChoice("builtin", 1950, 1959, "F"))
    back, warnings = Settings.from_query(settings.to_query())
    assert back == settings and warnings == []


def test_state_carries_across_pages():
    at = app()
    run_id = at.session_state[state.RUN_ID]
    at.number_input(key="hp_lr").set_value(0.05).run()
    at.selectbox(key="hp_schedule").set_value("cosine").run()
    for path in PAGES:
        at.switch_page(path).run()
        assert at.number_input(key="hp_lr").value == pytest.approx(0.05)
        assert at.selectbox(key="hp_schedule").value == "cosine"
        assert at.session_state[state.RUN_ID] == run_id
    # A widget hidden for a while (decay_at only shows with the step schedule) keeps its value.
    at.selectbox(key="hp_schedule").set_value("step").run()
    at.slider(key="hp_decay_at").set_value(0.75).run()
    at.selectbox(key="hp_schedule").set_value("constant").run()
    at.switch_page("pages/4_sample.py").run()
    at.selectbox(key="hp_schedule").set_value("step").run()
    assert at.slider(key="hp_decay_at").value == 0.75


def test_short_run_trains_and_every_page_shows_it():
    at = train_tiny(app())
    assert not at.exception and not at.error
    run = run_of(at)
    snap = run.job.snapshot()
    assert snap.status == "finished" and snap.step == 300
    progress = at.sidebar.get("progress")[0]
    assert progress.value == 100 and "finished" in progress.text and "300 / 300" in progress.text
    status = texts(at.sidebar.markdown)
    assert f"**{snap.params:,}** parameters" in status and f"best dev **{snap.best_dev:.4f}**" in status
    assert at.get("plotly_chart")  # the loss chart
    assert {m.label for m in at.main.metric} >= {"step (of 300)", "batch loss", "dev loss", "best dev"}

    at.switch_page("pages/3_train-vs-dev.py").run()
    assert not at.exception
    assert len(at.get("plotly_chart")) == 2  # this run over time, and all runs overlaid
    assert "train loss" in {m.label for m in at.metric}
    table = at.dataframe[0].value
    assert len(table) == 1 and table["run"][0].startswith("#1") and table["steps"][0] == 300
    assert math.isfinite(float(table["dev"][0]))
    at.button(key="btn_eval_test").click().run()
    assert "Test loss at step 300" in texts(at.info)

    at.switch_page("pages/2_embeddings.py").run()
    assert not at.exception and at.get("plotly_chart")
    assert len(at.dataframe[0].value) == 5  # nearest neighbours of the chosen character

    at.switch_page("pages/4_sample.py").run()
    at.number_input(key="sample_n").set_value(12)
    at.button(key="btn_sample").click().run()
    assert not at.exception and not at.error
    names = at.dataframe[0].value
    assert len(names) == 12 and set(names["new?"]) <= {"new", "new (a real held-out name)", "in training set"}
    assert "new names" in at.metric[0].label
    at.text_input(key="score_word").set_value("zq9").run()
    assert "'9'" in texts(at.error)  # names the character the model does not know

    at.switch_page("pages/5_checkpoints.py").run()
    assert not at.exception and at.get("download_button")


def test_controls_step_pause_resume_stop():
    at = app()
    for key, value in {**TINY, "hp_steps": 100_000}.items():
        at.number_input(key=key).set_value(value)
    at.number_input(key=state.STEP_N).set_value(50)
    at.button(key="btn_step").click().run()  # no run yet: Step makes one and runs exactly 50 steps
    run = run_of(at)
    wait_for(lambda: run.job.snapshot().status == "paused" and run.job.snapshot().step == 50)
    at.run()
    assert "paused" in at.sidebar.get("progress")[0].text
    at.button(key="btn_resume").click().run()
    wait_for(lambda: run.job.snapshot().step > 50)
    at.button(key="btn_pause").click().run()
    wait_for(lambda: run.job.snapshot().status == "paused")
    at.run()
    at.button(key="btn_resume").click().run()
    at.button(key="btn_stop").click().run()
    wait_for(lambda: run.job.snapshot().status == "stopped")
    at.run()
    # Stopped is final: nothing continues it; Start makes a new run from step 0.
    assert all(at.button(key=k).disabled for k in ("btn_pause", "btn_resume", "btn_stop", "btn_step"))
    at.button(key="btn_start").click().run()
    assert run.job_label == "#2" and run.job.snapshot().status == "running"
    assert not at.exception and not at.error


def test_reload_reattaches_to_the_run_in_the_url():
    first = app()
    for key, value in {**TINY, "hp_steps": 10_000_000}.items():
        first.number_input(key=key).set_value(value)
    first.button(key="btn_start").click().run()
    first.button(key="btn_start").click().run()  # 10M steps: the first click only warns how long it takes
    run_id = first.query_params["run"]
    second = app(**first.query_params)  # a reload: a new session, same URL
    assert second.session_state[state.RUN_ID] == run_id
    assert "running" in second.sidebar.get("progress")[0].text
    assert second.number_input(key="hp_hidden").value == TINY["hp_hidden"]  # the settings came along
    third = app(run="not-a-run-id")
    assert third.session_state[state.RUN_ID] != run_id
    assert "no longer on the server" in texts(third.warning)


def test_sessions_do_not_see_each_others_runs():
    first = train_tiny(app())
    second = app()
    assert second.session_state[state.RUN_ID] != first.session_state[state.RUN_ID]
    assert run_of(second).job is None and "press **Start**" in texts(second.info)
    second.switch_page("pages/3_train-vs-dev.py").run()
    assert not second.dataframe  # no table: this session has no runs of its own
    assert run_of(first).job.snapshot().step == 300


def test_job_cap_queues_the_start_with_a_clear_message():
    reg = state.registry()
    reg.max_active_jobs = 1
    other = reg.create()  # another user's session, training
    at = app()
    from mlp_core.data import make_dataset

    words = ["anna", "bob", "carla", "dave", "emma", "fred", "gina", "hugo", "ines", "jan"] * 3
    reg.start_new_job(other, TrainConfig(emb_dim=2, hidden=8, steps=10_000_000), make_dataset(words))
    for key, value in TINY.items():
        at.number_input(key=key).set_value(value)
    at.button(key="btn_start").click().run()
    assert "queued**: position 1 of 1 — starts when a slot frees" in texts(at.info)  # waits (issue 16), not refused
    assert run_of(at).job is None and not at.error
    assert not at.exception


def test_bad_dataset_upload_shows_the_reason():
    at = app()
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    at.file_uploader(key=state.DATA_UPLOAD).set_value(("bad.txt", b"\xff\xfe\x00broken", "text/plain")).run()
    assert not at.exception
    assert "Upload rejected: bad.txt" in texts(at.error)
    assert run_of(at).upload is None
    at.file_uploader(key=state.DATA_UPLOAD).set_value(("good.txt", b"anna\nbob\ncarla\n" * 20, "text/plain")).run()
    assert not at.error and run_of(at).upload[0] == "good.txt"
    assert "Training on good.txt" in texts(at.caption)


def test_bad_checkpoint_upload_shows_the_reason_and_keeps_the_run():
    at = train_tiny(app())
    job = run_of(at).job
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key="ckpt_upload").set_value(("junk.safetensors", b"not a checkpoint", "application/x")).run()
    assert not at.exception
    assert "Cannot load junk.safetensors" in texts(at.error)
    assert run_of(at).job is job and run_of(at).checkpoint is None


def test_checkpoint_upload_inspect_sample_and_keep_training():
    at = train_tiny(app())
    run = run_of(at)
    job = run.job
    raw = checkpoint_bytes(job.current_model(), job.config, job.dataset.vocab, meta={"step": 300})
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key="ckpt_upload").set_value(("mine.safetensors", raw, "application/octet-stream")).run()
    assert not at.exception and not at.error
    assert run.checkpoint is not None and at.dataframe[0].value is not None
    at.number_input(key="ckpt_until").set_value(400)
    at.button(key="btn_ckpt_train").click().run()
    assert not at.error, texts(at.error)
    new_job = run.job
    assert new_job is not job and new_job.wait(60)
    assert new_job.snapshot().step == 400 and run.job_label == "#2"
    at.switch_page("pages/4_sample.py").run()
    at.radio(key="sample_source").set_value("checkpoint").run()
    at.button(key="btn_sample").click().run()
    assert not at.exception and len(at.dataframe[0].value) == 20


def test_lr_sweep_runs_and_its_lr_can_be_used():
    at = app()
    for key, value in {"hp_emb_dim": 2, "hp_hidden": 16}.items():
        at.number_input(key=key).set_value(value)
    at.run()
    at.switch_page("pages/1_lr-sweep.py").run()
    at.number_input(key="sweep_steps").set_value(100)
    at.button(key="btn_sweep").click().run()
    sweep = run_of(at).sweep
    assert sweep is not None and sweep.wait(60)
    at.run()
    assert not at.exception and not at.error
    assert "Suggested learning rate" in texts(at.success)
    at.button(key="btn_use_lr").click().run()
    lr = float(f"{sweep.result.suggested_lr:.3g}")
    assert at.number_input(key="hp_lr").value == pytest.approx(lr)
    assert float(at.query_params.get("lr", TrainConfig().lr)) == pytest.approx(lr)


def test_model_from_build_model_is_accepted_by_sample_page():
    """A checkpoint with a vocabulary unlike the run's data still samples (new/old marked unknown)."""
    at = app()
    from mlp_core.data import Vocab

    vocab = Vocab(tuple("xyz"))
    cfg = TrainConfig(emb_dim=2, hidden=8)
    raw = checkpoint_bytes(build_model(vocab.size, cfg), cfg, vocab, meta={"step": 0})
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key="ckpt_upload").set_value(("xyz.safetensors", raw, "application/octet-stream")).run()
    at.button(key="btn_ckpt_sample").click().run()
    at.switch_page("pages/4_sample.py").run()
    at.button(key="btn_sample").click().run()
    assert not at.exception
    assert set(at.dataframe[0].value["new?"]) == {"?"}


def test_download_builds_a_loadable_checkpoint_of_the_current_weights():
    at = train_tiny(app())
    run = run_of(at)
    job = run.job
    raw = models.job_checkpoint(run, job, run.job_label, run.dataset_label)
    ckpt = load_checkpoint(raw)
    assert ckpt.meta["step"] == 300 and ckpt.config == job.config and ckpt.vocab == job.dataset.vocab
    assert ckpt.meta["dev_loss"] == pytest.approx(run.summaries["#1"].dev_loss)  # losses of exactly these weights
    for name, tensor in job.current_model().state_dict().items():
        assert torch.equal(ckpt.model.state_dict()[name], tensor)


def test_embeddings_pca_and_replay():
    at = train_tiny(app(), hp_emb_dim=4)
    at.switch_page("pages/2_embeddings.py").run()
    assert at.radio(key="emb_mode").value == "pca"
    spec = at.get("plotly_chart")[0].proto.spec
    assert "PC1 (" in spec and "% of variance)" in spec and "step 300" in spec
    steps = [int(s.replace(",", "")) for s in at.select_slider(key="emb_step").options]
    assert steps[0] == 0 and steps[-1] == 300 and len(steps) > 2
    at.select_slider(key="emb_step").set_value(steps[0]).run()  # replay: back to the init
    spec_init = at.get("plotly_chart")[0].proto.spec
    assert "at step 0" in spec_init
    # The axes give the share of the shown snapshot's variance, not the latest one's (the basis's own).
    snaps = run_of(at).job.snapshot().embeddings
    basis = analysis.pca_basis(snaps[-1].weights)
    final, init = (json.loads(s)["layout"]["yaxis"]["title"]["text"] for s in (spec, spec_init))
    assert final == f"PC2 ({basis.explained[1]:.0%} of variance)"
    assert init == f"PC2 ({basis.explained_of(snaps[0].weights)[1]:.0%} of variance)" and init != final
    # One PCA basis and one set of axis ranges for every snapshot: the replay does not jump.
    assert json.loads(spec_init)["layout"]["xaxis"]["range"] == json.loads(spec)["layout"]["xaxis"]["range"]
    at.radio(key="emb_mode").set_value("raw").run()
    at.selectbox(key="emb_dim_y").set_value(3).run()
    assert "dimension 3" in at.get("plotly_chart")[0].proto.spec and not at.exception


def test_divergence_is_reported():
    at = app()
    for key, value in TINY.items():
        at.number_input(key=key).set_value(value)
    # sgd's L2 decay at lr 1 multiplies every weight by (1 - lr * wd) = -9 per step: a real blow-up.
    at.number_input(key="hp_lr").set_value(1.0)
    at.number_input(key="hp_weight_decay").set_value(10.0)
    at.selectbox(key="hp_schedule").set_value("constant")
    at.button(key="btn_start").click().run()
    job = run_of(at).job
    assert job.wait(120)
    at.run()
    assert job.snapshot().status == "diverged"
    assert "diverged at step" in texts(at.sidebar.error) and "diverged at step" in texts(at.main.error)
    assert not at.exception


def test_the_lectures_names_are_the_default_dataset_offline():
    at = app()
    assert at.radio(key=state.DATA_SOURCE).value == "lecture"
    assert "32,033 words · 27 tokens" in texts(at.sidebar.caption)
    assert "data" not in at.query_params  # the default: a bare link means the lecture's data
    at.radio(key=state.DATA_SOURCE).set_value("builtin").run()  # the 2017 US names, one click away
    assert "29,910 words · 27 tokens" in texts(at.sidebar.caption)
    assert at.query_params["data"] == ["builtin"] or at.query_params["data"] == "builtin"
    assert not at.exception


def test_a_missing_lecture_file_points_to_upload(monkeypatch, tmp_path):
    from mlp_core import data

    monkeypatch.setattr(data, "LECTURE_PATH", tmp_path / "names.txt")
    at = app()
    error = texts(at.sidebar.error)
    assert "names.txt is missing or damaged" in error and "'Upload a file'" in error
    assert str(tmp_path) not in error  # no server path: a user cannot act on it
    (tmp_path / "names.txt").write_text("emma\nolivia\nava\n")  # present but not the lecture's file
    at.run()
    assert "names.txt is missing or damaged" in texts(at.sidebar.error)
    assert not at.exception


def test_the_sidebar_and_the_page_show_one_snapshot(monkeypatch):
    """The sidebar's status and the page's live view draw the same snapshot, though the job moves on between them
    (here every snapshot() call is 37 steps and a better dev loss further on)."""
    import dataclasses
    import itertools

    at = app()
    job = start_long_tiny(at)
    wait_for(lambda: job.snapshot().step > 0)
    real, calls = job.snapshot, itertools.count(1)

    def moving():
        n, snap = next(calls), real()
        return dataclasses.replace(snap, step=snap.step + 37 * n, best_dev=2.0 - n / 1000, best_step=37 * n)

    monkeypatch.setattr(job, "snapshot", moving)
    for page in ("app.py", "pages/5_checkpoints.py"):
        at.switch_page(page).run()
        assert not at.exception
        sidebar = at.sidebar.get("progress")[0].proto.text
        side_step = int(re.search(r"step ([\d,]+) /", sidebar).group(1).replace(",", ""))
        side_best = re.search(r"best dev \*\*([\d.]+)\*\*", texts(at.sidebar.markdown)).group(1)
        if page == "app.py":
            metrics = {m.label: m.value for m in at.metric}
            assert int(metrics["step (of 1,000,000)"].replace(",", "")) == side_step
            assert metrics["best dev"] == side_best
        else:
            assert f"step {side_step:,} (" in texts(at.caption), (side_step, texts(at.caption))
            assert f"**{side_best}**" in texts(at.markdown)
    monkeypatch.setattr(job, "snapshot", real)
    job.stop()
