"""RunRegistry: one run per browser session, a server-wide cap on training, idle runs reaped."""

import math
import os
import threading
import time

import pytest

from mlp_core.config import TrainConfig
from mlp_core.data import make_dataset
from mlp_core.diagnostics import overfit_one_batch
from mlp_core.job import BackgroundTask, in_worker
from mlp_core.registry import CapacityError, RunRegistry, UnknownRunError
from mlp_core.trainer import Trainer

LONG = 10_000_000  # steps: a job that only ends when told to
WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "charlotte", "amelia", "harper", "evelyn"] * 5


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def dataset():
    return make_dataset(WORDS, block_size=3)


@pytest.fixture
def config():
    return TrainConfig(emb_dim=2, hidden=8, batch_size=8, steps=LONG, eval_every=1_000_000, seed=1)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def registry(clock):
    reg = RunRegistry(max_active_jobs=2, idle_timeout_s=600, forget_after_s=3600, clock=clock)
    yield reg
    reg.release_all()
    assert len(reg) == 0


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


def test_ids_are_unguessable_and_runs_isolated(registry, dataset, config):
    a, b = registry.create(), registry.create()
    assert a != b and len(a) >= 20 and len(b) >= 20
    registry.start_new_job(a, config, dataset)
    run_a, run_b = registry.get(a), registry.get(b)
    assert run_a.job is not None and run_b.job is None  # b sees nothing of a's training
    assert run_a is not run_b and run_a.summaries is not run_b.summaries


def test_unknown_id(registry, config, dataset):
    assert registry.get("no-such-run") is None and registry.get(None) is None and registry.get("") is None
    with pytest.raises(UnknownRunError):
        registry.touch("no-such-run")
    with pytest.raises(UnknownRunError):
        registry.start_new_job("no-such-run", config, dataset)
    registry.release("no-such-run")  # ignored


def test_cap_refuses_with_a_clear_message_and_frees_on_stop(registry, dataset, config):
    ids = [registry.create() for _ in range(3)]
    registry.start_new_job(ids[0], config, dataset)
    registry.start_new_job(ids[1], config, dataset)
    assert registry.active_jobs() == 2
    with pytest.raises(CapacityError, match=r"already training 2 runs \(the limit is 2\).*stop one"):
        registry.start_new_job(ids[2], config, dataset)
    assert registry.get(ids[2]).job is None  # a refused start leaves the run as it was
    # Retraining your own running job does not need a second slot.
    registry.start_new_job(ids[0], config.replace(seed=2), dataset)
    assert registry.active_jobs() == 2
    registry.get(ids[1]).job.stop(timeout=10)
    registry.start_new_job(ids[2], config, dataset)
    # Now full again: resuming the stopped job is refused too.
    with pytest.raises(CapacityError):
        registry.resume_job(ids[1])
    with pytest.raises(CapacityError):
        registry.step_job(ids[1], 10)


def test_paused_jobs_hold_their_slot_and_sweeps_count(registry, dataset, config):
    a, b = registry.create(), registry.create()
    job = registry.start_new_job(a, config, dataset)
    job.pause()
    wait_for(lambda: job.snapshot().status == "paused")
    release = threading.Event()
    task = BackgroundTask(lambda report: release.wait(30))
    registry.start_sweep(b, task, config)
    assert registry.active_jobs() == 2
    with pytest.raises(CapacityError):
        registry.start_new_job(b, config, dataset)
    release.set()
    assert task.wait(30)
    registry.start_new_job(b, config, dataset)


def test_overfit_one_batch_trains_in_a_worker_process_under_the_cap(registry, dataset, config, monkeypatch):
    def no_training_here(*args, **kwargs):
        raise AssertionError("the server process trained")

    monkeypatch.setattr(Trainer, "advance", no_training_here)  # in this process only: workers fork from elsewhere
    a, b = registry.create(), registry.create()
    registry.start_new_job(a, config, dataset)
    task = BackgroundTask(in_worker(overfit_one_batch, config, dataset, steps=1_000_000))
    registry.start_overfit(b, task)
    wait_for(lambda: task.progress.done > 0 or task.progress.status != "running")
    assert task.progress.status == "running", task.progress.message
    pid = task.progress.partial  # the worker process's id
    assert isinstance(pid, int) and pid != os.getpid()
    # It takes a slot like a training job: the server (cap 2) is full.
    assert registry.active_jobs() == 2
    with pytest.raises(CapacityError):
        registry.start_new_job(b, config, dataset)
    with pytest.raises(CapacityError):
        registry.start_overfit(a, BackgroundTask(in_worker(overfit_one_batch, config, dataset, steps=100)))
    # Stop ends the worker process and frees the slot.
    task.cancel()
    assert task.wait(10) and task.progress.status == "stopped"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert registry.active_jobs() == 1
    short = BackgroundTask(in_worker(overfit_one_batch, config, dataset, steps=200))
    registry.start_overfit(b, short)
    assert short.wait(60) and short.progress.status == "finished", short.progress.message
    result = short.result
    assert result.steps[-1] == 200 and result.losses[-1] < result.losses[0]
    assert registry.active_jobs() == 1


def test_idle_runs_are_stopped_then_forgotten(registry, clock, dataset, config):
    idle, watched = registry.create(), registry.create()
    idle_job = registry.start_new_job(idle, config, dataset)
    watched_job = registry.start_new_job(watched, config, dataset)
    clock.now += 599
    registry.touch(watched)
    assert registry.reap_idle() == []
    clock.now += 2  # idle: 601 s unseen; watched: 2 s
    assert registry.reap_idle() == [idle]
    assert idle_job.wait(30) and idle_job.snapshot().status == "stopped"
    assert watched_job.snapshot().active
    run = registry.get(idle)  # the run is still there: a bookmark reattaches and can resume
    assert "nobody looked" in run.notice and run.job is idle_job
    clock.now += 3600
    registry.touch(watched)
    registry.reap_idle()
    assert idle not in registry and watched in registry
    assert registry.get(idle) is None


def test_reaper_thread_reaps(dataset, config):
    reg = RunRegistry(max_active_jobs=1, idle_timeout_s=0.05)
    run_id = reg.create()
    job = reg.start_new_job(run_id, config, dataset)
    reg.start_reaper(interval_s=0.02)
    try:
        assert job.wait(30) and job.snapshot().status == "stopped"
    finally:
        reg.stop_reaper()
        reg.release(run_id)


def test_summaries_of_every_job_with_final_losses(registry, dataset, config):
    run_id = registry.create()
    # Scaled init starts near ln V, so 60 steps end below it: a "finished" run (worse than guessing is "diverged").
    short = config.replace(steps=60, eval_every=30, init="scaled")
    first = registry.start_new_job(run_id, short, dataset, dataset_label="toy")
    assert first.wait(60)
    run = registry.get(run_id)
    wait_for(lambda: "#1" in run.summaries and run.summaries["#1"].losses_step == 60)
    s = run.summaries["#1"]
    assert (s.steps, s.status, s.dataset, s.params) == (60, "finished", "toy", first.snapshot().params)
    assert math.isfinite(s.train_loss) and math.isfinite(s.dev_loss) and math.isnan(s.test_loss)
    assert [e[0] for e in s.evals] == [30, 60]
    second = registry.start_new_job(run_id, config, dataset)
    wait_for(lambda: second.snapshot().step > 0)
    history = run.history()
    assert [h.label for h in history] == ["#1", "#2"] and history[1].status == "running"
    # Full-split losses on demand, on a copy, mid-training; the test split only when asked.
    summary = run.evaluate_current(("train", "dev", "test"))
    assert summary.label == "#2" and math.isfinite(summary.test_loss) and summary.losses_step is not None


def test_new_idle_job_replaces_and_summarises_the_old(registry, dataset, config):
    run_id = registry.create()
    run = registry.get(run_id)
    job = registry.start_new_job(run_id, config, dataset)
    wait_for(lambda: job.snapshot().step > 0)
    fresh = run.new_job(config, dataset)  # what the dashboard's Reset does
    assert run.job is fresh and fresh.status == "idle" and run.job_label == "#2"
    assert job.wait(30) and job.snapshot().status == "stopped"  # asked to stop, without waiting for it
    wait_for(lambda: "#1" in run.summaries)  # summarised by its own worker on the way out
    assert run.summaries["#1"].status == "stopped" and math.isfinite(run.summaries["#1"].dev_loss)
    assert registry.active_jobs() == 0


def test_limits_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MLP_MAX_JOBS", "7")
    monkeypatch.setenv("MLP_IDLE_TIMEOUT", "90")
    reg = RunRegistry()
    assert (reg.max_active_jobs, reg.idle_timeout_s) == (7, 90.0)
    monkeypatch.delenv("MLP_MAX_JOBS")
    monkeypatch.delenv("MLP_IDLE_TIMEOUT")
    assert (RunRegistry().max_active_jobs, RunRegistry().idle_timeout_s) == (4, 600.0)
    with pytest.raises(ValueError, match="at least 1"):
        RunRegistry(max_active_jobs=0)
    monkeypatch.setenv("MLP_MAX_JOBS", "four")
    with pytest.raises(ValueError, match="MLP_MAX_JOBS must be a whole number, got 'four'"):
        RunRegistry()


def test_the_lr_range_test_runs_in_a_worker_process_and_sends_its_curve(registry, dataset, config, monkeypatch):
    """Issue 15, #5 (and DEVELOPERS: heavy work never in the server process): the LR page's range test too."""
    from mlp_core.lr_sweep import lr_range_test

    def no_training_here(*args, **kwargs):
        raise AssertionError("the server process trained")

    monkeypatch.setattr(Trainer, "train_steps", no_training_here)  # this process only: workers fork from elsewhere
    run_id = registry.create()
    task = BackgroundTask(in_worker(lr_range_test, config, dataset, -3.0, 0.0, 300))
    registry.start_sweep(run_id, task, config)
    assert registry.active_jobs() == 1  # under the cap like a job
    curves = []
    while task.progress.status == "running":
        partial = task.progress.partial
        if isinstance(partial, tuple):
            curves.append(len(partial[0]))
        time.sleep(0.01)
    assert task.progress.status == "finished", task.progress.message
    assert curves and curves[-1] > 0  # the page draws the curve so far, from the worker
    assert math.isfinite(task.result.suggested_lr) and len(task.result.rows()) == 300


def test_full_split_losses_on_request_are_computed_in_a_worker(registry, dataset, config, monkeypatch):
    """Train vs dev's "Compute train and dev loss now" and the test split: never evaluated in the server."""
    import mlp_core.trainer as trainer_module

    def no_evaluation_here(*args, **kwargs):
        raise AssertionError("the server process evaluated")

    run_id = registry.create()
    job = registry.start_new_job(run_id, config.replace(steps=60, eval_every=30, init="scaled"), dataset)
    assert job.wait(60)
    monkeypatch.setattr(trainer_module, "mean_loss", no_evaluation_here)  # this process only
    summary = registry.get(run_id).evaluate_current(("train", "dev", "test"))
    assert summary.losses_step == 60 and all(
        math.isfinite(v) for v in (summary.train_loss, summary.dev_loss, summary.test_loss)
    )
