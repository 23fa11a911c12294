"""Issue 5, dashboard: hostile uploads, absurd settings and many sessions, through Streamlit's AppTest."""

from __future__ import annotations

import pickle
import time

import pytest
from test_app import app, clean_caches, fresh_registry, run_of, texts, wait_for  # noqa: F401 (fixtures)
from test_checkpoint import HOSTILE, Evil

from dashboard import state
from mlp_core import data
from mlp_core.checkpoint import checkpoint_bytes, load_checkpoint

# A run that keeps training for the whole test (stopped by the registry fixture at the end).
LONG = {"hp_emb_dim": 2, "hp_hidden": 16, "hp_batch_size": 32, "hp_steps": 10_000_000, "hp_eval_every": 1000}


def start_long(at, **overrides):
    for key, value in {**LONG, **overrides}.items():
        at.number_input(key=key).set_value(value)
    at.button(key="btn_start").click().run()
    job = run_of(at).job
    assert job is not None, texts(at.error)
    wait_for(lambda: job.snapshot().step > 0)
    return job


def still_training(job) -> None:
    step = job.snapshot().step
    wait_for(lambda: job.snapshot().step > step)
    assert job.status == "running"


# ---------------------------------------------------------------------------- hostile checkpoints
@pytest.fixture(scope="module")
def good_raw():
    at = app()
    job = start_long(at)
    raw = checkpoint_bytes(job.current_model(), job.config, job.dataset.vocab, meta={"step": 1})
    job.stop()
    return raw


def test_every_hostile_checkpoint_upload_is_refused_and_the_run_keeps_training(good_raw, tmp_path):
    at = app()
    job = start_long(at)
    at.switch_page("app_pages/checkpoints.py").run()
    marker = tmp_path / "pwned"
    model = load_checkpoint(good_raw).model
    uploads = [("evil.pt", pickle.dumps(Evil(marker)))]
    uploads += [(f"{case}.safetensors", HOSTILE[case][0](good_raw, model)) for case in sorted(HOSTILE)]
    for name, raw in uploads:
        at.file_uploader(key="ckpt_upload").set_value((name, raw, "application/octet-stream")).run()
        assert not at.exception, (name, at.exception)
        assert f"Cannot load {name}" in texts(at.error), name
        run = run_of(at)
        assert run.job is job and run.checkpoint is None, name
    assert not marker.exists(), "a pickle's code ran"
    still_training(job)


# ---------------------------------------------------------------------------- hostile datasets
BAD_DATASETS = [
    ("random.bin", bytes(range(256)) * 8, "looks binary"),
    ("latin1.txt", "renée\nzoë\n".encode("latin-1"), "not UTF-8"),
    ("nul.txt", b"anna\x00\nbob\n", "looks binary"),
    ("huge_line.txt", b"a" * 10_000 + b"\n", "line 1 has 10000 characters"),
    ("cjk.txt", "\n".join(chr(0x4E00 + i) for i in range(10_000)).encode(), "10000 distinct characters"),
    ("dots.txt", b"anna\nb.b\n", "reserved as the start/end marker"),
    ("empty.txt", b"  \n\n", "no words"),
]


def test_hostile_dataset_uploads_are_refused_and_the_previous_dataset_stays():
    at = app()
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    good = ("good.txt", b"anna\nbob\ncarla\n" * 20, "text/plain")
    at.file_uploader(key=state.DATA_UPLOAD).set_value(good).run()
    assert run_of(at).upload[0] == "good.txt"
    for name, raw, reason in BAD_DATASETS:
        at.file_uploader(key=state.DATA_UPLOAD).set_value((name, raw, "text/plain")).run()
        assert not at.exception, name
        errors = texts(at.error)
        assert f"Upload rejected: {name}" in errors and reason in errors, (name, errors)
        assert run_of(at).upload[0] == "good.txt", f"{name} replaced the last good dataset"


def test_an_upload_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1000)
    at = app()
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    at.file_uploader(key=state.DATA_UPLOAD).set_value(("big.txt", b"anna\n" * 400, "text/plain")).run()
    assert not at.exception
    assert "over the 1,000-byte limit" in texts(at.error)


# ---------------------------------------------------------------------------- absurd settings
@pytest.mark.parametrize(
    "settings",
    [
        {"hp_hidden": 1, "hp_emb_dim": 1},
        {"hp_batch_size": 65536, "hp_steps": 3},
        {"hp_steps": 0},
        {"hp_lr": 1e-9},
    ],
    ids=["hidden-1-emb-1", "batch-65536", "steps-0", "lr-1e-9"],
)
def test_extreme_widget_values_run_without_a_traceback(settings):
    at = app()
    for key, value in {"hp_emb_dim": 2, "hp_hidden": 16, "hp_steps": 50, "hp_eval_every": 10, **settings}.items():
        at.number_input(key=key).set_value(value)
    at.button(key="btn_start").click().run()
    assert not at.exception
    job = run_of(at).job
    assert job is not None and job.wait(120)
    at.run()
    assert not at.exception
    assert job.snapshot().status in ("finished", "diverged")


def test_block_size_slider_extremes():
    at = app()
    for value in (1, 32):
        at.slider(key="hp_block_size").set_value(value)
        for key, v in {"hp_emb_dim": 2, "hp_hidden": 8, "hp_steps": 20, "hp_eval_every": 10}.items():
            at.number_input(key=key).set_value(v)
        at.button(key="btn_start").click().run()
        assert not at.exception
        assert run_of(at).job.wait(60) and run_of(at).job.config.block_size == value


def test_a_diverging_run_says_so_and_still_samples():
    at = app(lr="1", weight_decay="10", init="scaled", steps="10000", hidden="16", emb_dim="2")
    at.button(key="btn_start").click().run()
    job = run_of(at).job
    assert job.wait(60)
    at.run()
    assert job.snapshot().status == "diverged"
    assert f"diverged at step {job.trainer.diverged_at}" in texts(at.error)
    at.switch_page("app_pages/sample.py").run()
    at.button(key="btn_sample").click().run()
    assert not at.exception and len(at.dataframe[0].value) == 20


# ---------------------------------------------------------------------------- many sessions
@pytest.mark.slow
def test_five_sessions_train_and_sample_at_once_each_seeing_only_its_own_run(monkeypatch):
    monkeypatch.setenv("MLP_MAX_JOBS", "4")
    state.registry.clear()
    sessions = [app() for _ in range(5)]
    ids = [at.session_state[state.RUN_ID] for at in sessions]
    assert len(set(ids)) == 5
    jobs = [start_long(at) for at in sessions[:4]]
    # The fifth hits the server's cap and is told so; nobody else's run is touched.
    for key, value in LONG.items():
        sessions[4].number_input(key=key).set_value(value)
    sessions[4].button(key="btn_start").click().run()
    assert "already training 4 runs" in texts(sessions[4].error)
    assert run_of(sessions[4]).job is None
    # Each sees its own run: its own id in the URL and its own job.
    for at, run_id, job in zip(sessions[:4], ids[:4], jobs, strict=True):
        at.run()
        assert at.query_params["run"] in (run_id, [run_id])
        assert run_of(at).job is job
        at.switch_page("app_pages/sample.py").run()
        at.button(key="btn_sample").click().run()
        assert not at.exception and len(at.dataframe[0].value) == 20
    # Stopping one leaves the others training, and frees a slot for the fifth.
    sessions[0].button(key="btn_stop").click().run()
    assert jobs[0].wait(5) and jobs[0].status == "stopped"
    for job in jobs[1:]:
        still_training(job)
    job5 = start_long(sessions[4])
    still_training(job5)
    # Abandoned sessions: nobody looks for longer than the idle timeout, their jobs stop.
    reg = state.registry()
    stopped = reg.reap_idle(now=time.monotonic() + reg.idle_timeout_s + 1)
    assert set(stopped) == {ids[1], ids[2], ids[3], ids[4]}
    for job in [*jobs[1:], job5]:
        assert job.wait(10) and job.status == "stopped"
    sessions[1].run()
    assert "nobody looked at this run" in texts(sessions[1].warning)
