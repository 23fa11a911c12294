"""A class on one server (issue 16): paused runs parked, a queue for Start, a run-time limit, the class board.

The registry's clock is moved by hand; workers are real processes, and every wait is for a state, never a time.
"""

# ruff: noqa: F811 (the fixtures below are test_registry's, imported: pytest passes them by name)
from __future__ import annotations

import math
import threading

import pytest
from test_registry import LONG, WORDS, clock, config, dataset, wait_for  # noqa: F401 (fixtures)

from mlp_core.board import BIGRAM_DEV_LOSS, board, board_name
from mlp_core.config import TrainConfig
from mlp_core.diagnostics import overfit_one_batch
from mlp_core.job import BackgroundTask, TrainingJob, in_worker
from mlp_core.processes import process_alive
from mlp_core.registry import CapacityError, RunRegistry, RunTooLongError
from mlp_core.store import RunRecord, RunStore


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MLP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path / "home"


def make_registry(clock, cap: int, tracked: bool):
    uri = RunStore().uri if tracked else None
    return RunRegistry(
        max_active_jobs=cap, idle_timeout_s=600, forget_after_s=3600, clock=clock, store_uri=uri, park_after_s=300
    )


@pytest.fixture
def tracked(home, clock):
    reg = make_registry(clock, 1, tracked=True)
    yield reg
    reg.release_all()


@pytest.fixture
def untracked(clock):
    reg = make_registry(clock, 1, tracked=False)
    yield reg
    reg.release_all()


def paused_recorded_job(reg: RunRegistry, run_id: str, config, dataset) -> TrainingJob:
    """A recorded job that trained a little, is in the store, and is paused now."""
    job = reg.start_new_job(run_id, config, dataset, dataset_label="tiny")
    wait_for(lambda: job.snapshot().step > 20 and job.snapshot().run_id is not None)
    job.pause()
    wait_for(lambda: job.snapshot().status == "paused")
    return job


# ---------------------------------------------------------------------------- parking
def test_a_paused_run_whose_browser_has_gone_is_parked_and_resumes_in_the_same_run(tracked, clock, dataset, config):
    run_id = tracked.create()
    job = paused_recorded_job(tracked, run_id, config, dataset)
    pid, store_id = job.pid, job.snapshot().run_id
    assert tracked.active_jobs() == 1  # a paused run holds its slot (and its ~350 MB worker) ...
    clock.now += 30
    tracked.touch(run_id)
    tracked.reap_idle()
    assert job.snapshot().status == "paused"  # ... while its tab is open
    clock.now += tracked.gone_after_s  # the tab is closed: nothing refreshes the run any more
    tracked.reap_idle()
    wait_for(lambda: job.snapshot().status == "parked")
    snap = job.snapshot()
    assert snap.message == f"parked at step {snap.step:,} to free its slot: Resume continues it"
    # Its worker has ended (a zombie until the fork server reaps it, and only then does the job see it end) ...
    wait_for(lambda: not process_alive(pid) and not job.live)
    assert tracked.active_jobs() == 0  # ... and its slot is free
    store = RunStore(tracked.store_uri)
    record = store.record(store_id)
    assert record.status == "parked" and record.resumable and record.step == snap.step
    assert store.load_resume(store_id).step == snap.step  # its exact checkpoint

    # Resume unparks it: a new worker goes on from that step, in the same stored run.
    assert tracked.request_resume(run_id) == 0
    assert job.snapshot().run_id == store_id and job.snapshot().step >= snap.step
    wait_for(lambda: job.snapshot().status == "running" and job.snapshot().step > snap.step + 20)
    assert job.pid not in (None, pid) and tracked.active_jobs() == 1
    job.stop(timeout=10)
    assert [r.run_id for r in store.runs()] == [store_id]  # no second run: the same one went on


def test_a_run_paused_for_long_is_parked_and_an_untracked_one_is_kept(tracked, untracked, clock, dataset, config):
    run_id = tracked.create()
    job = paused_recorded_job(tracked, run_id, config, dataset)
    tracked.reap_idle()  # the reaper sees it paused from now on
    clock.now += tracked.park_after_s
    tracked.touch(run_id)  # its tab is open, but it has been paused for park_after_s
    tracked.reap_idle()
    wait_for(lambda: job.snapshot().status == "parked")

    # A run that is not in the store has no checkpoint to come back from: it keeps its worker (and slot).
    other = untracked.create()
    kept = untracked.start_new_job(other, config, dataset)
    kept.pause()
    wait_for(lambda: kept.snapshot().status == "paused")
    clock.now += 10 * untracked.park_after_s
    untracked.touch(other)
    untracked.reap_idle()
    assert kept.snapshot().status == "paused" and kept.live
    with pytest.raises(ValueError, match="not saved in the run store"):
        kept.park()


def test_an_idle_recorded_run_is_parked_not_stopped(tracked, clock, dataset, config):
    run_id = tracked.create()
    job = tracked.start_new_job(run_id, config, dataset, dataset_label="tiny")
    wait_for(lambda: job.snapshot().run_id is not None)
    clock.now += tracked.idle_timeout_s
    assert tracked.reap_idle() == [run_id]
    wait_for(lambda: job.snapshot().status == "parked")
    assert "parked because nobody looked" in tracked.get(run_id).notice


# ---------------------------------------------------------------------------- the queue
def test_start_at_the_cap_queues_in_order_cancels_and_starts_by_itself(untracked, dataset, config):
    a, b, c, d = (untracked.create() for _ in range(4))
    first = untracked.start_new_job(a, config, dataset)
    assert untracked.request_start(b, config, dataset) == 1
    assert untracked.request_start(c, config, dataset) == 2
    assert untracked.request_start(d, config, dataset) == 3
    assert untracked.get(b).job is None  # waiting, not refused and not started
    assert [untracked.queue_position(x) for x in (a, b, c, d)] == [None, (1, 3), (2, 3), (3, 3)]
    assert untracked.cancel_queued(c) and untracked.queue_position(d) == (2, 2)
    assert untracked.request_start(b, config.replace(seed=7), dataset) == 1  # new settings keep the place
    # Retraining your own running job takes no new slot: it never waits in the queue.
    assert untracked.request_start(a, config.replace(seed=3), dataset) == 0
    first = untracked.get(a).job
    assert untracked.active_jobs() == 1

    first.stop(timeout=10)  # the slot frees: the head starts by itself
    wait_for(lambda: untracked.get(b).job is not None and untracked.get(b).job.snapshot().status == "running")
    assert untracked.get(b).job.config.seed == 7
    assert untracked.queue_position(b) is None and untracked.queue_position(d) == (1, 1)
    assert untracked.active_jobs() == 1


def test_a_queued_start_parks_a_paused_run_at_once(tracked, dataset, config):
    a, b = tracked.create(), tracked.create()
    paused = paused_recorded_job(tracked, a, config, dataset)
    assert tracked.request_start(b, config, dataset, dataset_label="tiny") == 1
    wait_for(lambda: paused.snapshot().status == "parked")
    wait_for(lambda: tracked.get(b).job is not None and tracked.get(b).job.snapshot().status == "running")
    assert tracked.queue_position(b) is None and tracked.active_jobs() == 1
    # The parked run's Resume now waits for the slot in its turn.
    assert tracked.request_resume(a) == 1
    tracked.get(b).job.stop(timeout=10)
    wait_for(lambda: paused.snapshot().status == "running")


def test_the_reaper_drops_a_gone_browsers_queued_start(untracked, clock, dataset, config):
    a, b = untracked.create(), untracked.create()
    untracked.start_new_job(a, config, dataset)
    assert untracked.request_start(b, config, dataset) == 1
    clock.now += untracked.gone_after_s
    untracked.touch(a)  # a's tab is open; b's was closed
    untracked.reap_idle()
    assert untracked.queue_position(b) is None and "queued Start was dropped" in untracked.get(b).notice


def test_the_lr_range_test_and_overfit_one_batch_take_a_slot_like_any_job(untracked, dataset, config):
    a, b = untracked.create(), untracked.create()
    release = threading.Event()
    sweep = BackgroundTask(lambda report: release.wait(60))
    untracked.start_sweep(a, sweep, config)
    assert untracked.active_jobs() == 1
    with pytest.raises(CapacityError):
        untracked.start_overfit(b, BackgroundTask(in_worker(overfit_one_batch, config, dataset, steps=100)))
    assert untracked.request_start(b, config, dataset) == 1  # a Start waits behind the LR test
    release.set()
    assert sweep.wait(30)
    untracked.reap_idle()  # a task's end has no hook: the next reap (or a waiting browser's refresh) moves on
    wait_for(lambda: untracked.get(b).job is not None and untracked.get(b).job.snapshot().active)
    overfit = BackgroundTask(in_worker(overfit_one_batch, config, dataset, steps=1_000_000))
    with pytest.raises(CapacityError):
        untracked.start_overfit(a, overfit)
    untracked.get(b).job.stop(timeout=10)
    untracked.start_overfit(a, overfit)
    assert untracked.active_jobs() == 1
    assert untracked.request_start(b, config, dataset) == 1
    overfit.cancel()


# ---------------------------------------------------------------------------- the run-time limit
def test_max_run_minutes_refuses_a_long_run_and_says_how_to_shorten_it(monkeypatch, clock):
    config = TrainConfig(steps=200_000)
    monkeypatch.delenv("MLP_MAX_RUN_MINUTES", raising=False)
    assert RunRegistry(max_active_jobs=1, clock=clock).max_run_minutes is None
    RunRegistry(max_active_jobs=1, clock=clock).check_run_time(config, 1e9)  # no limit: nothing refused
    monkeypatch.setenv("MLP_MAX_RUN_MINUTES", "30")
    reg = RunRegistry(max_active_jobs=1, clock=clock)
    assert reg.max_run_minutes == 30
    reg.check_run_time(config, 30 * 60)
    with pytest.raises(RunTooLongError, match="about 1,934 days") as refused:
        reg.check_run_time(config, 1934 * 86400)
    message = str(refused.value)
    assert "at most 30 minutes (MLP_MAX_RUN_MINUTES)" in message and "Lower the steps to about 2" in message
    assert "anyway" not in message and isinstance(refused.value, CapacityError)
    with pytest.raises(RunTooLongError, match=r"about 100,000 or fewer"):
        reg.check_run_time(config, 60 * 60)


# ---------------------------------------------------------------------------- the class board
def test_board_names_are_checked():
    assert board_name("  Ada   L. ") == "Ada L." and board_name("Zoë-2") == "Zoë-2"
    for bad in ("a", "x" * 25, "<b>hi</b>", "a_b", "http://x", ""):
        with pytest.raises(ValueError):
            board_name(bad)


def record(run_id: str, name: str, best: float, dataset: str, source: str, step: int = 100) -> RunRecord:
    tags = {"mlp.owner": "secret-owner-hash"} | ({"mlp.board_name": name} if name else {})
    params = {"dataset_name": dataset, "dataset_source": source, "model_params": "11897"}
    return RunRecord(run_id, "run", "finished", step, params, tags, {"best_dev_loss": best}, 1.7e9, None)


def test_the_board_lists_published_runs_per_dataset_best_first_with_the_lectures_references():
    records = [
        record("1", "Ada", 2.20, "lecture names.txt", "lecture"),
        record("2", "", 2.01, "lecture names.txt", "lecture"),  # not published: never on the board
        record("3", "Bo", 2.12, "lecture names.txt", "lecture"),
        record("4", "Cy", 1.90, "US names 2017 (girls)", "babynames:2017-2017:F"),
        record("5", "Di", math.nan, "lecture names.txt", "lecture"),  # no dev loss yet
    ]
    tables = board(records)
    assert list(tables) == ["lecture names.txt", "US names 2017 (girls)"]
    lecture = tables["lecture names.txt"]
    assert [(r.name, r.dev_loss, r.reference) for r in lecture] == [
        ("Bo", 2.12, False),
        ("the lecture (makemore part 2)", 2.17, True),
        ("Ada", 2.20, False),
        ("bigram counts (makemore part 1)", BIGRAM_DEV_LOSS, True),
    ]
    assert lecture[0].params == 11897 and lecture[0].steps == 100
    assert [r.name for r in tables["US names 2017 (girls)"]] == ["Cy"]  # no lecture references on other data
    assert "secret-owner-hash" not in repr(tables)


def test_publish_and_unpublish_in_the_store(home):
    store = RunStore()
    a = store.create_run("a", {"dataset_name": "d"}, {"mlp.owner": "o"})
    b = store.create_run("b", {"dataset_name": "d"}, {"mlp.owner": "o"})
    assert store.published() == []
    store.publish(a, "Ada")
    assert [(r.run_id, r.board_name) for r in store.published()] == [(a, "Ada")]
    store.unpublish(a)
    store.unpublish(b)  # never published: nothing to do
    assert store.published() == [] and store.record(a).board_name == ""
