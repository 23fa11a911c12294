"""Issue 5, dashboard: hostile uploads, absurd settings and many sessions, driven through Streamlit's AppTest.

What the user must see every time: a clear st.error or st.warning that names the problem, never an exception
element (a traceback); no code from an upload ever runs; and the session's run is left exactly as it was.
"""

from __future__ import annotations

import io
import json
import pickle
import re
import threading

import pytest
import torch
from test_app import app, clean_caches, fresh_registry, run_of, texts, wait_for  # noqa: F401 (fixtures)
from test_checkpoint import CONFIG, HOSTILE, PICKLED, WORDS, Evil, random_bytes, with_metadata

from dashboard import models, state
from mlp_core import checkpoint as ckpt_mod
from mlp_core import data
from mlp_core.checkpoint import checkpoint_bytes, load_checkpoint
from mlp_core.config import TrainConfig
from mlp_core.data import Vocab
from mlp_core.model import build_model
from mlp_core.registry import CapacityError
from mlp_core.sampling import sample_names

OCTET = "application/octet-stream"
SMALL = {"hp_emb_dim": 2, "hp_hidden": 16, "hp_batch_size": 32, "hp_eval_every": 1000}
FOREVER = 10_000_000  # steps: a run that trains for the whole test (the registry fixture stops it)


# ---------------------------------------------------------------------------- helpers
def set_widgets(at, values: dict) -> None:
    for key, value in values.items():
        (at.slider if key in ("hp_block_size", state.DATA_YEARS) else at.number_input)(key=key).set_value(value)


def start_long(at, **overrides):
    """Press Start on a small run that does not end by itself; returns its job once it has stepped."""
    set_widgets(at, {**SMALL, "hp_steps": FOREVER, **overrides})
    at.button(key="btn_start").click().run()
    if run_of(at).job is None and "This run would take about" in texts(at.sidebar.warning):
        at.button(key="btn_start").click().run()  # FOREVER steps: the first click only warns how long it takes
    job = run_of(at).job
    assert job is not None, texts(at.error)
    wait_for(lambda: job.snapshot().step > 0)
    return job


def paused_run(at, steps: int = 50):
    """Step x N on a fresh session: a run paused at exactly `steps`, its weights frozen."""
    set_widgets(at, {**SMALL, "hp_steps": FOREVER, state.STEP_N: steps})
    at.button(key="btn_step").click().run()
    job = run_of(at).job
    wait_for(lambda: job.snapshot().status == "paused" and job.snapshot().step == steps)
    return job


def still_training(job) -> None:
    step = job.snapshot().step
    wait_for(lambda: job.snapshot().step > step)
    assert job.status == "running"


def fingerprint(run) -> tuple:
    """Everything about a run's current job that a stray upload could change."""
    job = run.job
    snap = job.snapshot()
    weights = {k: v.detach().clone() for k, v in job.current_model().state_dict().items()}
    return job, run.job_label, snap.status, snap.step, snap.version, weights


def assert_untouched(before: tuple, after: tuple, what: str) -> None:
    assert after[:5] == before[:5], what
    assert all(torch.equal(before[5][k], after[5][k]) for k in before[5]), f"{what} changed the weights"


def samples_on_the_sample_page(at, n: int = 5) -> list:
    at.switch_page("pages/4_sample.py").run()
    at.number_input(key=state.SAMPLE_N).set_value(n)
    at.button(key="btn_sample").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[0].value
    assert len(table) == n
    return list(table["name"])


# ---------------------------------------------------------------------------- hostile checkpoints
@pytest.fixture(scope="module")
def good_ckpt() -> tuple[bytes, torch.nn.Module]:
    """The checkpoint test_checkpoint's HOSTILE builders expect (so their messages apply word for word)."""
    vocab = Vocab.from_words(WORDS)
    model = build_model(vocab.size, CONFIG)
    return checkpoint_bytes(model, CONFIG, vocab, meta={"step": 7, "dev_loss": 2.5}), model


def torch_saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def with_step(raw: bytes, step) -> bytes:
    return with_metadata(raw, meta=json.dumps({"step": step}))


def hostile_checkpoints(raw: bytes, model, marker) -> list[tuple[str, bytes, str]]:
    """(file name, bytes, what the error must say): every broken file of test_checkpoint, code-running
    pickles, and metadata whose step lies (it feeds the page's widgets)."""
    cases = [(f"{case}.safetensors", make(raw, model), reason) for case, (make, reason) in sorted(HOSTILE.items())]
    cases += [
        ("evil.pt", pickle.dumps(Evil(marker)), PICKLED),
        ("evil.safetensors", pickle.dumps([Evil(marker)]), PICKLED),
        ("evil-protocol-0.safetensors", pickle.dumps(Evil(marker), protocol=0), "not a safetensors checkpoint"),
        ("evil-torch-save.pt", torch_saved({"W1": Evil(marker)}), PICKLED),
    ]
    for step in ("abc", -5, 2.5, 10**30, float("nan"), True, [7]):
        cases.append((f"step {step!r}.safetensors", with_step(raw, step), "its metadata gives step"))
    return cases


def test_hostile_checkpoint_uploads_are_refused_and_leave_the_run_as_it_was(good_ckpt, tmp_path):
    raw, model = good_ckpt
    armed = tmp_path / "armed"
    pickle.loads(pickle.dumps(Evil(armed)))  # proves the payload runs code when unpickled
    assert armed.exists()

    at = app()
    job = paused_run(at)
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key=state.CKPT_UPLOAD).set_value(("good.safetensors", raw, OCTET)).run()
    run = run_of(at)
    good = run.checkpoint
    assert good is not None and not at.error
    before = fingerprint(run)
    marker = tmp_path / "pwned"
    for name, payload, reason in hostile_checkpoints(raw, model, marker):
        at.file_uploader(key=state.CKPT_UPLOAD).set_value((name, payload, OCTET)).run()
        assert not at.exception, (name, at.exception)
        errors = texts(at.main.error)
        assert f"Cannot load {name}: " in errors and re.search(reason, errors), (name, errors)
        assert "Traceback" not in errors and "\n" not in errors, name
        assert run_of(at) is run and run.checkpoint is good and run.checkpoint_name == "good.safetensors", name
        assert_untouched(before, fingerprint(run), name)
    assert not marker.exists(), "an uploaded pickle ran code"
    # Both survivors still work: the earlier good checkpoint samples, the paused run resumes.
    at.button(key="btn_ckpt_sample").click().run()
    at.switch_page("pages/4_sample.py").run()
    assert at.radio(key=state.SAMPLE_SOURCE).value == models.CHECKPOINT
    at.button(key="btn_sample").click().run()
    assert not at.exception and len(at.dataframe[0].value) == 20
    at.button(key="btn_resume").click().run()
    assert run.job is job
    still_training(job)


def test_a_checkpoint_over_the_size_limit_is_refused(good_ckpt, monkeypatch):
    raw, _ = good_ckpt
    monkeypatch.setattr(ckpt_mod, "MAX_CHECKPOINT_BYTES", len(raw) - 1)
    at = app()
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key=state.CKPT_UPLOAD).set_value(("big.safetensors", raw, OCTET)).run()
    assert not at.exception
    assert f"Cannot load big.safetensors: checkpoint is too large ({len(raw):,} bytes" in texts(at.error)
    assert run_of(at).checkpoint is None


def test_a_checkpoint_of_another_vocabulary_loads_but_cannot_train_on_this_data():
    """A valid file for letters x, y, z: it samples, but keep-training on the built-in names is refused by name."""
    vocab = Vocab(tuple("xyz"))
    config = TrainConfig(emb_dim=2, hidden=8)
    raw = checkpoint_bytes(build_model(vocab.size, config), config, vocab, meta={"step": 3})
    at = app()
    job = paused_run(at)
    before = fingerprint(run_of(at))
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key=state.CKPT_UPLOAD).set_value(("xyz.safetensors", raw, OCTET)).run()
    assert not at.exception and not at.error
    at.button(key="btn_ckpt_train").click().run()
    assert not at.exception
    assert "the data has characters the model's vocabulary lacks: 'abcdefghijklmnopqrstuvw'" in texts(at.main.error)
    assert_untouched(before, fingerprint(run_of(at)), "a refused keep-training")
    at.button(key="btn_ckpt_sample").click().run()
    at.switch_page("pages/4_sample.py").run()
    at.button(key="btn_sample").click().run()
    assert not at.exception and set("".join(at.dataframe[0].value["name"])) <= set("xyz")
    assert run_of(at).job is job and job.snapshot().status == "paused"


def test_a_checkpoint_at_the_step_limit_is_shown_but_not_offered_for_training(good_ckpt):
    raw, _ = good_ckpt
    at = app()
    at.switch_page("pages/5_checkpoints.py").run()
    at.file_uploader(key=state.CKPT_UPLOAD).set_value(("late.safetensors", with_step(raw, FOREVER), OCTET)).run()
    assert not at.exception and not at.error
    assert "It is at step 10,000,000: a run trains at most 10,000,000 steps" in texts(at.caption)
    assert not any(b.key == "btn_ckpt_train" for b in at.button)


# ---------------------------------------------------------------------------- hostile datasets
GOOD_WORDS = ["anna", "bob", "carla", "dave", "emma", "fred", "gina", "hugo", "ines", "jan"] * 2
GOOD = ("good.txt", "".join(f"{w}\n" for w in GOOD_WORDS).encode(), "text/plain")
BAD_DATASETS = [
    ("random.bin", random_bytes(4096, 1), "looks binary \\(it contains NUL bytes\\)"),
    ("latin1.txt", "renée\nzoë\n".encode("latin-1"), "not UTF-8 text \\(bad byte at offset 3\\); save it as UTF-8"),
    ("nul.txt", b"anna\x00\nbob\n", "looks binary"),
    ("huge_line.txt", b"a" * 5_000_000, "line 1 has 5000000 characters; the limit is 64"),
    ("one_char.txt", b"a", "need at least 3 words to split into train/dev/test, got 1"),
    ("cjk.txt", "\n".join(chr(0x4E00 + i) for i in range(10_000)).encode(), "10,?000 distinct characters"),
    ("dots.txt", b"anna\nb.b\n", "line 2 contains '.', which is reserved as the start/end marker"),
    ("blank.txt", b"\xef\xbb\xbf  \n\t\n", "no words"),
]


def assert_trains_on_good_txt(at) -> None:
    set_widgets(at, {**SMALL, "hp_steps": 20, "hp_eval_every": 10})
    at.button(key="btn_start").click().run()
    if run_of(at).job is None:  # a rejected file is still selected: Start says so; removed, good.txt trains
        assert "Not started: Upload rejected" in texts(at.sidebar.error)
        at.file_uploader(key=state.DATA_UPLOAD).set_value(None).run()
        at.button(key="btn_start").click().run()
    run = run_of(at)
    assert run.job is not None and run.job.wait(60), texts(at.error)
    assert run.dataset_label == "upload: good.txt" and sorted(run.job.dataset.words) == sorted(GOOD_WORDS)


def test_hostile_dataset_uploads_are_refused_and_the_previous_dataset_stays():
    at = app()
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    at.file_uploader(key=state.DATA_UPLOAD).set_value(GOOD).run()
    assert run_of(at).upload[0] == "good.txt" and not at.error
    for name, raw, reason in BAD_DATASETS:
        at.file_uploader(key=state.DATA_UPLOAD).set_value((name, raw, "text/plain")).run()
        assert not at.exception, (name, at.exception)
        errors = texts(at.sidebar.error)
        assert f"Upload rejected: {name}: " in errors and re.search(reason, errors), (name, errors)
        assert run_of(at).upload[0] == "good.txt", f"{name} replaced the last good dataset"
        assert at.radio(key=state.DATA_SOURCE).value == "upload"
        assert "Kept the last good file, good.txt" in texts(at.sidebar.caption), name
    assert_trains_on_good_txt(at)


def test_an_upload_over_the_size_limit_is_refused(monkeypatch):
    monkeypatch.setattr(data, "MAX_FILE_BYTES", 1000)
    at = app()
    at.radio(key=state.DATA_SOURCE).set_value("upload").run()
    at.file_uploader(key=state.DATA_UPLOAD).set_value(GOOD).run()
    at.file_uploader(key=state.DATA_UPLOAD).set_value(("big.txt", b"anna\n" * 400, "text/plain")).run()
    assert not at.exception
    assert "Upload rejected: big.txt: 2,000 bytes is over the 1,000-byte limit" in texts(at.error)
    assert run_of(at).upload[0] == "good.txt"
    assert_trains_on_good_txt(at)


# ---------------------------------------------------------------------------- absurd settings
# (query params, widget values): each runs to its end or diverges, and is then drawn, sampled and saved.
ABSURD = {
    "block-size-1": ({}, {"hp_block_size": 1}),
    "block-size-32": ({}, {"hp_block_size": 32}),
    "emb-dim-1": ({}, {"hp_emb_dim": 1}),
    "hidden-1": ({}, {"hp_hidden": 1}),
    "batch-1": ({}, {"hp_batch_size": 1}),
    "batch-larger-than-the-data": (
        {"data": "builtin", "years": "1880", "sex": "M"},
        {"hp_batch_size": 65536, "hp_steps": 3},
    ),
    "lr-1e-9": ({}, {"hp_lr": 1e-9}),
    "lr-100": ({}, {"hp_lr": 100.0}),
    "steps-0": ({}, {"hp_steps": 0}),
}


@pytest.mark.parametrize(("query", "widgets"), ABSURD.values(), ids=ABSURD.keys())
def test_absurd_settings_train_sample_and_save_without_a_traceback(query, widgets):
    at = app(**query)
    set_widgets(at, {**SMALL, "hp_steps": 40, "hp_eval_every": 20, **widgets})
    at.button(key="btn_start").click().run()
    assert not at.exception and not at.error, (at.exception, texts(at.error))
    run = run_of(at)
    job = run.job
    assert job.wait(120)
    at.run()
    assert not at.exception
    snap = job.snapshot()
    assert snap.status in ("finished", "diverged"), snap.message
    assert snap.status in at.sidebar.get("progress")[0].text
    for key, value in widgets.items():
        assert getattr(job.config, key.removeprefix("hp_")) == value
    if "years" in query:  # the case is what it says: a batch larger than the whole training split
        assert len(job.dataset.splits["train"][1]) < job.config.batch_size
    samples_on_the_sample_page(at)
    assert load_checkpoint(models.job_checkpoint(run, job, run.job_label, run.dataset_label)).config == job.config


def test_widget_values_past_the_bounds_never_reach_a_run():
    """A hand-made websocket message can carry any number (the number inputs have no browser-side bounds on
    purpose: issue 9): Start refuses, naming every bad field, and nothing trains."""
    at = app()
    hostile = {"hp_hidden": 10**9, "hp_lr": -1.0, "hp_batch_size": 0, "hp_block_size": 999}
    set_widgets(at, {**SMALL, "hp_steps": 20, **hostile})
    at.run()
    assert not at.exception
    at.button(key="btn_start").click().run()
    assert not at.exception
    assert run_of(at).job is None
    refusal = texts(at.sidebar.error)
    for label in ("Hidden layer size", "Learning rate", "Batch size"):
        assert f"{label} must be between" in refusal, label
    assert at.slider(key="hp_block_size").value != 999  # a slider keeps itself in range
    set_widgets(at, {"hp_hidden": 16, "hp_lr": 0.1, "hp_batch_size": 32})
    at.button(key="btn_start").click().run()
    job = run_of(at).job
    assert job is not None and job.wait(60)
    for key in hostile:  # the run trains with what the widgets show
        shown = (at.slider if key == "hp_block_size" else at.number_input)(key=key).value
        assert getattr(job.config, key.removeprefix("hp_")) == shown, key


def test_nonsense_in_the_url_warns_and_falls_back_to_the_defaults():
    query = {
        "lr": "abc",
        "block_size": "999",
        "hidden": "-5",
        "emb_dim": "1e400",
        "batch_size": "nan",
        "steps": "1.5",
        "optimizer": "evil",
        "weight_decay": "inf",
        "years": "3000",
        "sex": "<script>",
        "run": "../../etc/passwd",
    }
    at = app(**query)
    assert not at.exception and not at.error
    warnings = texts(at.warning)
    for key in ("lr", "block_size", "hidden", "emb_dim", "batch_size", "steps", "optimizer", "weight_decay"):
        assert f"Ignored the link's {key}={query[key]!r}" in warnings, key
    assert "years='3000'" in warnings and "sex='<script>'" in warnings
    assert "The run in this link is no longer on the server" in warnings
    defaults = TrainConfig()
    assert at.number_input(key="hp_lr").value == defaults.lr and at.slider(key="hp_block_size").value == 3
    assert at.number_input(key="hp_hidden").value == defaults.hidden
    assert at.selectbox(key="hp_optimizer").value == "sgd"
    # The URL is rewritten to the settings in use: a fresh run id and nothing else.
    assert set(at.query_params) == {"run"} and at.session_state[state.RUN_ID] != query["run"]
    at.run()
    assert not at.warning  # said once
    job = paused_run(at, 5)  # and a run starts with the defaults (plus this test's small model)
    assert job.config == defaults.replace(emb_dim=2, hidden=16, steps=FOREVER)


def test_a_diverging_run_says_so_and_still_samples():
    # sgd's L2 decay at lr 1 multiplies every weight by (1 - lr * wd) = -9 per step: a real blow-up.
    at = app(lr="1", weight_decay="10", schedule="constant", init="scaled", steps="10000", hidden="16", emb_dim="2")
    at.button(key="btn_start").click().run()
    job = run_of(at).job
    assert job.wait(60)
    at.run()
    assert not at.exception
    n = int(re.search(r"diverged at step (\d+)", job.snapshot().message).group(1))
    assert job.snapshot().status == "diverged" and 0 < n < 10_000
    assert f"diverged at step {n}" in texts(at.sidebar.error) and f"diverged at step {n}" in texts(at.main.error)
    kept = job.snapshot().step  # the step of the weights kept (the last finite ones)
    assert kept <= n and f"**diverged** #1 · step {kept:,} / 10,000" in at.sidebar.get("progress")[0].text
    assert at.button(key="btn_step").disabled  # nothing left to step; Start or Reset begin again
    samples_on_the_sample_page(at, 20)
    nll = at.dataframe[0].value["NLL (nats)"]
    assert all(0 <= x < float("inf") for x in nll)  # the kept weights are the last finite ones


# ---------------------------------------------------------------------------- many sessions
class Clock:
    """A registry clock the test moves by hand (idle reaping without waiting ten minutes)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def hammer(reg, run_ids: list[str], spare_id: str, errors: list, rounds: int = 15) -> list[threading.Thread]:
    """Threads doing at once what the pages do for every session, plus pause/resume and a Start over the cap."""

    def pages(run_id: str) -> None:
        run = reg.get(run_id)
        for i in range(rounds):
            choice = models.choose(run, models.CURRENT)
            assert len(sample_names(choice.model, choice.vocab, 5, seed=i, train_words=choice.train_words)) == 5
            run.history()
            load_checkpoint(models.job_checkpoint(run, run.job, run.job_label, run.dataset_label))

    def controls() -> None:
        job = reg.get(run_ids[0]).job
        for _ in range(rounds):
            job.pause()
            reg.resume_job(run_ids[0])
            reg.reap_idle()

    def over_the_cap() -> None:
        job = reg.get(run_ids[0]).job
        for _ in range(rounds):
            with pytest.raises(CapacityError, match="already training 5 runs"):
                reg.start_new_job(spare_id, job.config, job.dataset)

    def guarded(fn, *args):
        def body():
            try:
                fn(*args)
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        return threading.Thread(target=body, daemon=True)

    threads = [guarded(pages, run_id) for run_id in run_ids] + [guarded(controls), guarded(over_the_cap)]
    for t in threads:
        t.start()
    return threads


@pytest.mark.slow
def test_many_sessions_train_and_sample_at_once_each_seeing_only_its_own_run(monkeypatch):
    monkeypatch.setenv("MLP_MAX_JOBS", "5")
    monkeypatch.setenv("MLP_IDLE_TIMEOUT", "600")
    state.registry.clear()
    reg = state.registry()
    clock = Clock()
    reg.clock = clock  # before any run exists, so every last_seen is on this clock
    sessions = [app() for _ in range(6)]
    ids = [at.session_state[state.RUN_ID] for at in sessions]
    assert len(set(ids)) == 6

    # Five sessions train at once, each its own model size; the sixth waits in the queue (issue 16), and leaves it.
    jobs = [start_long(at, hp_hidden=16 + i) for i, at in enumerate(sessions[:5])]
    sixth = sessions[5]
    set_widgets(sixth, {**SMALL, "hp_steps": FOREVER})
    sixth.button(key="btn_start").click().run()
    sixth.button(key="btn_start").click().run()  # FOREVER steps: the first click only warns how long it takes
    assert "queued**: position 1 of 1" in texts(sixth.sidebar.info) and not sixth.sidebar.error
    assert run_of(sixth).job is None and not sixth.exception
    sixth.button(key="btn_cancel_queue").click().run()  # (queued, it would park a paused run below at once)
    assert reg.queue_position(ids[5]) is None

    # Each sees only its own run: its id in the URL, its job, its size, and (paused, so it holds still) its step.
    for at in sessions[:5]:
        at.button(key="btn_pause").click().run()
    for at, run_id, job in zip(sessions[:5], ids[:5], jobs, strict=True):
        wait_for(lambda job=job: job.snapshot().status == "paused")
        at.run()
        snap = job.snapshot()
        assert at.query_params["run"] in (run_id, [run_id]) and run_of(at).job is job
        assert f"**paused** #1 · step {snap.step:,} / 10,000,000" in at.sidebar.get("progress")[0].text
        assert f"**{snap.params:,}** parameters" in texts(at.sidebar.markdown)
        assert {m.label: m.value for m in at.main.metric}["step (of 10,000,000)"] == f"{snap.step:,}"
    assert len({job.snapshot().params for job in jobs}) == 5
    for at, job in zip(sessions[:5], jobs, strict=True):
        at.button(key="btn_resume").click().run()
        still_training(job)

    # All sample at once (each page view while the other four train), then a burst from threads.
    for at in sessions[:5]:
        samples_on_the_sample_page(at)
        assert "Using run #1 at step" in texts(at.caption)
    errors: list = []
    threads = hammer(reg, ids[:5], ids[5], errors)
    for t in threads:
        t.join(60)  # bounded: a deadlock fails here instead of hanging CI
    assert not any(t.is_alive() for t in threads), "deadlock: a thread never finished"
    assert errors == []
    for job in jobs:
        still_training(job)

    # Stopping one leaves the others training, and frees a slot for the sixth.
    sessions[0].button(key="btn_stop").click().run()
    assert jobs[0].wait(10) and jobs[0].status == "stopped"
    for job in jobs[1:]:
        still_training(job)
    job6 = start_long(sixth)
    assert run_of(sixth).job is job6 and not sixth.error

    # Abandoned sessions: 1 and 2 stop looking; 3, 4 and the sixth keep looking; past the idle timeout,
    # the next page view (any session's) parks exactly the abandoned runs (recorded: Resume continues them).
    clock.now += 0.6 * reg.idle_timeout_s
    for at in (sessions[3], sessions[4], sixth):
        at.run()
    clock.now += 0.6 * reg.idle_timeout_s
    sessions[3].run()
    for job in jobs[1:3]:
        assert job.wait(10) and job.status == "parked" and not job.live
    for job in (jobs[3], jobs[4], job6):
        still_training(job)
    assert jobs[0].status == "stopped"
    sessions[1].run()
    assert "Training was parked because nobody looked at this run for 10 minutes" in texts(sessions[1].warning)
    # A parked run resumes; a new run from Start goes on training too.
    assert not sessions[1].button(key="btn_resume").disabled
    sessions[1].button(key="btn_start").click().run()
    sessions[1].button(key="btn_start").click().run()  # FOREVER steps: the first click only warns
    still_training(run_of(sessions[1]).job)
    assert not any(at.exception for at in sessions)


def test_a_newer_best_than_the_download_holds_is_said_next_to_it():
    """The best-dev download keeps the file it was drawn with (issue 15 #10); when the run finds a newer best, the
    page says the button holds an older one and how to get the newer (seen: "lowest dev at step 24,500" beside
    "Download the best-dev weights (step 19,000)")."""
    from test_app import app, start_long_tiny, wait_for

    at = app(data="builtin")
    job = start_long_tiny(at)
    wait_for(lambda: job.snapshot().best_step is not None)
    page = at.switch_page("pages/5_checkpoints.py").run()
    best = next(b for b in page.get("download_button") if b.key == "btn_download_best")
    held = int(best.proto.label.split("step ")[1].rstrip(")").replace(",", ""))
    wait_for(lambda: job.snapshot().best_step not in (None, held), timeout=120)
    page.run()
    captions = " | ".join(c.value for c in page.caption)
    assert f"holds the best weights as of step {held:,}" in captions and "Take the latest weights" in captions
    job.stop()


def test_an_actions_message_survives_the_rerun_its_new_run_causes():
    """ "Training on from step N ..." must still be there after the automatic rerun a new job triggers (its status,
    its first dev point): shown once and dropped, it vanished before it could be read (seen in Chromium)."""
    from test_app import app, train_tiny

    at = app(data="builtin")
    train_tiny(at)
    page = at.switch_page("pages/5_checkpoints.py").run()
    page.button(key="btn_best_continue").click().run()
    assert "Training on from step" in " | ".join(s.value for s in page.success)
    page.run()  # the rerun the new run's first refresh makes
    assert "Training on from step" in " | ".join(s.value for s in page.success)
    run_of_page = state.registry().get(page.session_state[state.RUN_ID])
    run_of_page.job.stop()
