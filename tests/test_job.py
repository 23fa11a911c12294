"""TrainingJob and BackgroundTask: the commands a UI sends, and what it reads back, across threads."""

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from mlp_core.job import BackgroundTask, Cancelled, TrainingJob
from mlp_core.lr_sweep import LRSweepResult, lr_range_test
from mlp_core.model import build_model
from mlp_core.trainer import Trainer

LONG = 10_000_000  # steps: a job that only ends when told to


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll until predicate() holds. The timeout only guards against a hang; nothing here is a timing test."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached (the job seems stuck)")
        time.sleep(0.005)


@pytest.fixture
def make_job(tiny_dataset, tiny_config):
    """Build jobs, and stop every one at the end of the test, whatever happened."""
    jobs: list[TrainingJob] = []

    def make(**kwargs) -> TrainingJob:
        names = ("target_dev_loss", "on_finish", "model", "worker_hook")
        job_kwargs = {k: kwargs.pop(k) for k in names if k in kwargs}
        job = TrainingJob(tiny_config.replace(**kwargs), tiny_dataset, **job_kwargs)
        jobs.append(job)
        return job

    yield make
    for job in jobs:
        assert job.stop(timeout=10)


def test_start_runs_to_the_end(make_job):
    job = make_job(steps=300, eval_every=100)
    assert job.status == "idle" and job.snapshot().step == 0
    job.start()
    assert job.wait(60)
    snap = job.snapshot()
    assert (snap.status, snap.step, snap.total_steps, snap.progress) == ("finished", 300, 300, 1.0)
    assert [e.step for e in snap.evals] == [100, 200, 300]
    assert snap.train_history.count.sum() == 300
    assert snap.best_dev == min(e.dev_loss for e in snap.evals)
    assert not snap.active and snap.params == job.current_model().num_params()
    assert snap.weights_step == 300 and snap.final and not job.live


def test_pause_resume_stop(make_job):
    job = make_job(steps=LONG)
    job.start()
    wait_for(lambda: job.snapshot().step > 0)
    assert job.snapshot().active
    job.pause()
    wait_for(lambda: job.snapshot().status == "paused")
    paused_at = job.snapshot().step
    assert job.snapshot().weights_step == paused_at  # a pause publishes the weights of that step
    time.sleep(0.3)
    assert job.snapshot().step == paused_at and job.snapshot().status == "paused"  # really paused
    job.resume()
    wait_for(lambda: job.snapshot().step > paused_at)
    assert job.snapshot().status == "running"
    assert job.stop() is True
    snap = job.snapshot()
    assert snap.status == "stopped" and not snap.active and snap.final and not job.live
    # Stopped is final: a new run is a new job.
    for command in (job.start, job.resume, lambda: job.step(1)):
        with pytest.raises(RuntimeError, match="final"):
            command()


def test_step_n_runs_exactly_n_steps_then_pauses(make_job):
    job = make_job(steps=LONG, eval_every=10)
    job.step(37)  # from idle: starts the worker
    wait_for(lambda: job.snapshot().status == "paused" and job.snapshot().step == 37)
    time.sleep(0.2)
    assert job.snapshot().step == job.snapshot().weights_step == 37
    assert [e.step for e in job.snapshot().evals] == [10, 20, 30]
    job.step(5)  # on a paused job
    wait_for(lambda: job.snapshot().step == 42 and job.snapshot().status == "paused")
    time.sleep(0.2)
    assert job.snapshot().step == job.snapshot().weights_step == 42
    with pytest.raises(ValueError, match="at least 1"):
        job.step(0)
    job.resume()  # a paused job goes back to running
    wait_for(lambda: job.snapshot().step > 42)
    assert job.stop() is True


def _slow_first_chunk(entered: Path, trainer: Trainer) -> None:
    """Worker hook: the first chunk creates `entered`, then waits 0.5 s before it trains."""
    advance = trainer.advance
    calls = []

    def slow(n: int):
        if not calls:
            entered.touch()
            time.sleep(0.5)
        calls.append(n)
        return advance(n)

    trainer.advance = slow


def test_step_n_asked_during_a_chunk_still_runs_n_more(make_job, tmp_path):
    """A chunk already running for an earlier "step x 100" must not use up a new "step x 5"."""
    entered = tmp_path / "entered"
    job = make_job(steps=LONG, eval_every=1000, worker_hook=functools.partial(_slow_first_chunk, entered))
    job.step(100)  # the first chunk is one step (its time is not known yet), held 0.5 s
    wait_for(entered.exists)
    job.step(5)  # while that chunk is held: replaces what is left of the 100
    wait_for(lambda: job.snapshot().status == "paused")
    time.sleep(0.2)
    assert job.snapshot().step == 1 + 5


def test_finished_is_final(make_job):
    job = make_job(steps=20, eval_every=10)
    job.start()
    assert job.wait(60) and job.status == "finished"
    with pytest.raises(RuntimeError, match="finished, which is final"):
        job.step(3)
    assert job.snapshot().step == 20 and not job.live


def test_reset_starts_over_from_a_fresh_init(make_job, tiny_dataset, tiny_config):
    job = make_job(steps=LONG)
    job.start()
    wait_for(lambda: job.snapshot().step > 20)
    version = job.snapshot().version
    job.reset()
    snap = job.snapshot()
    assert (snap.status, snap.step, snap.evals, snap.best_step) == ("idle", 0, (), None)
    assert len(snap.train_history) == 0 and snap.version > version
    fresh = build_model(tiny_dataset.vocab.size, tiny_config.replace(steps=LONG))
    assert all(torch.equal(job.current_model().state_dict()[k], v) for k, v in fresh.state_dict().items())
    job.step(5)
    wait_for(lambda: job.snapshot().step == 5 and job.snapshot().status == "paused")


def test_snapshot_is_immutable_and_versions_increase(make_job):
    job = make_job(steps=LONG, eval_every=50)
    first = job.snapshot()
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.step = 5  # type: ignore[misc]
    job.start()
    wait_for(lambda: len(job.snapshot().evals) >= 1)
    early = job.snapshot()
    early_len, early_mean = len(early.train_history), early.train_history.mean.copy()
    early_evals = early.evals
    versions = [early.version]
    wait_for(lambda: job.snapshot().step > early.step + 200 and len(job.snapshot().evals) > len(early_evals))
    versions.append(job.snapshot().version)
    assert job.stop() is True
    versions.append(job.snapshot().version)
    assert first.version < versions[0] < versions[1] <= versions[2]
    # The old snapshot did not move while training went on.
    assert isinstance(early.evals, tuple) and early.evals == early_evals
    assert len(early.train_history) == early_len and np.array_equal(early.train_history.mean, early_mean)
    assert first.step == 0 and first.status == "idle"


def _boom(n: int):
    raise RuntimeError("boom in the worker")


def _advance_raises(trainer: Trainer) -> None:
    trainer.advance = _boom


def test_worker_exception_ends_in_error_with_the_message(make_job):
    finished: list[str] = []
    job = make_job(steps=LONG, on_finish=lambda j: finished.append(j.status), worker_hook=_advance_raises)
    job.start()
    assert job.wait(30)
    snap = job.snapshot()
    assert snap.status == "error"
    assert "RuntimeError" in snap.message and "boom in the worker" in snap.message
    assert "boom in the worker" in job.error_traceback
    assert finished == ["error"]
    with pytest.raises(RuntimeError, match="reset"):
        job.start()
    with pytest.raises(RuntimeError, match="reset"):
        job.step(1)
    job.reset()  # and reset recovers
    assert job.status == "idle"


def test_divergence_ends_the_job_with_a_message(make_job):
    job = make_job(steps=LONG, optimizer="sgd", lr=1.0, weight_decay=10.0, schedule="constant")
    job.start()
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "diverged" and "diverged at step" in snap.message
    assert f"kept the weights of step {snap.weights_step:,}" in snap.message
    assert snap.step == snap.weights_step < snap.diverged_at
    assert all(torch.isfinite(p).all() for p in job.current_model().parameters())


def test_target_dev_loss_stops_the_job(make_job):
    job = make_job(steps=LONG, eval_every=50, target_dev_loss=10.0)  # reached at the first evaluation
    job.start()
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.step == 50
    assert "reached dev loss" in snap.message


def test_current_model_is_a_consistent_copy_mid_training(make_job, tiny_dataset, tiny_config):
    job = make_job(steps=LONG)
    job.start()
    wait_for(lambda: job.snapshot().step > 50)
    model = job.current_model()  # while the worker trains
    assert next(model.parameters()).device.type == "cpu" and not model.training
    copy = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = tiny_dataset.splits["dev"]
    with torch.no_grad():
        assert math.isfinite(model.loss(x, y).item())
    wait_for(lambda: job.snapshot().step > 200)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in copy.items())  # training did not touch it
    job.pause()
    wait_for(lambda: job.snapshot().status == "paused")
    # Paused, the published copy is exactly the weights of that step (a reference run gets the same).
    at = job.current_weights()
    assert at.step == job.snapshot().step
    reference = Trainer(tiny_config.replace(steps=LONG), tiny_dataset)
    while reference.step < at.step:
        reference.advance(at.step - reference.step)
    live = reference.model.state_dict()
    assert all(torch.equal(at.model.state_dict()[k], live[k]) for k in live)
    assert job.best_model().num_params() == model.num_params() and not job.best_model().training


# ---------------------------------------------------------------------------- BackgroundTask
def test_background_task_progress_and_result():
    seen: list[int] = []

    def work(report):
        for i in range(1, 11):
            report(i, 10, i * i)
            seen.append(i)
        return "done"

    task = BackgroundTask(work)
    task.start()
    assert task.wait(10)
    assert task.result == "done" and seen == list(range(1, 11))
    p = task.progress
    assert (p.status, p.done, p.total, p.fraction, p.partial) == ("finished", 10, 10, 1.0, 100)


def test_background_task_cancel():
    started = []

    def forever(report):
        i = 0
        while True:
            report(i, 0)
            started.append(i)
            i += 1
            time.sleep(0.001)

    task = BackgroundTask(forever)
    task.start()
    wait_for(lambda: len(started) > 3)
    task.cancel(timeout=5)
    assert task.wait(5)
    assert task.progress.status == "stopped" and task.progress.message == "cancelled"
    assert task.result is None


def test_background_task_error_is_kept():
    def bad(report):
        report(1, 3)
        raise ValueError("no good")

    task = BackgroundTask(bad)
    task.start()
    assert task.wait(10)
    assert task.progress.status == "error"
    assert task.progress.message == "ValueError: no good"
    assert task.progress.done == 1
    assert issubclass(Cancelled, Exception)


def test_lr_sweep_in_a_background_task(tiny_dataset, tiny_config):
    task = BackgroundTask(lambda report: lr_range_test(tiny_config, tiny_dataset, num=60, progress=report))
    task.start()
    assert task.wait(60)
    assert task.progress.status == "finished", task.progress.message
    result = task.result
    assert isinstance(result, LRSweepResult) and len(result.losses) == 60
    exponents, losses = task.progress.partial
    assert len(exponents) == len(losses) == 60
    assert -3 <= result.suggested_exponent <= 0


def test_the_snapshot_carries_the_trainers_diagnostics_across_the_process(tiny_dataset, tiny_config):
    """Sent as increments, through the thinning of a long run: the job ends up with exactly the trainer's list."""
    config = tiny_config.replace(steps=600, eval_every=2)  # 300 probes: the list is thinned twice on the way
    here = Trainer(config, tiny_dataset)
    while not here.finished:
        here.advance(config.steps)
    job = TrainingJob(config, tiny_dataset)
    job.start()
    assert job.wait(120)
    got = job.snapshot().diagnostics
    assert [p.step for p in got] == [p.step for p in here.diagnostics]
    has_map = [p.layers[0].saturation_map is not None for p in got]
    assert has_map == [p.layers[0].saturation_map is not None for p in here.diagnostics]
    assert has_map[0] and has_map[-1] and not any(has_map[1:-1])


def test_best_dev_names_the_best_weights_the_job_holds(make_job, tiny_dataset, tiny_config):
    """A stop with no grace can cut the worker off after it reported a new best but before that best's weights
    (they travel only with weight updates) arrived: the snapshot's best then still describes the weights held."""
    from mlp_core.worker import RUNNING, STOPPED, Update, numpy_state

    job = make_job()
    step40 = numpy_state(build_model(tiny_dataset.vocab.size, tiny_config.replace(seed=40)).state_dict())

    def update(step: int, best_dev: float, best_step: int, status: str = RUNNING, **kw) -> Update:
        return Update(status, "", "", step, 0.1, 2.5, 100.0, 0.01, 1.0, best_dev, best_step, None, **kw)

    job._apply(update(40, 44.42, 40, weights=(40, step40), best_weights=(40, step40)))
    job._apply(update(60, 37.7091, 60))  # the worker's numbers: a new best at step 60, its weights not sent yet
    job._apply(update(60, 37.7091, 60, status=STOPPED))  # killed: no final update with weights ever comes
    snap, best = job.snapshot(), job.best_weights()
    assert (snap.best_step, snap.best_dev) == (40, 44.42) == (best.step, 44.42)
    assert all(np.array_equal(best.model.state_dict()[k].numpy(), v) for k, v in step40.items())
    # When the weights do arrive, the snapshot moves on with them.
    job._apply(update(80, 37.7091, 60, weights=(60, step40), best_weights=(60, step40)))
    assert (job.snapshot().best_step, job.snapshot().best_dev) == (60, 37.7091) == (job.best_weights().step, 37.7091)


def _slow_final_evaluation(release: Path, trainer: Trainer) -> None:
    """The full-split evaluation at the end waits until the test creates `release`."""
    evaluate = trainer.evaluate

    def held(split: str, *args, **kwargs):
        while not release.exists():
            time.sleep(0.01)
        return evaluate(split, *args, **kwargs)

    trainer.evaluate = held


def test_a_stop_shows_stopped_before_the_final_evaluation_ends(tiny_dataset, tiny_config, tmp_path):
    """Issue 16: Stop lands at once. The worker says "stopped" (with its final weights) before it computes the
    full-split losses of the final weights, and stop(wait=False) returns without waiting for the worker's end."""
    release = tmp_path / "release"
    config = tiny_config.replace(steps=LONG, eval_every=1_000_000)
    job = TrainingJob(config, tiny_dataset, worker_hook=functools.partial(_slow_final_evaluation, release))
    job.start()
    wait_for(lambda: job.snapshot().step > 0)
    assert job.stop(wait=False) is False  # sent; the worker ends in the background
    wait_for(lambda: job.snapshot().status == "stopped")
    snap = job.snapshot()
    assert job.live and snap.final_losses is None  # still evaluating: the page shows the stop meanwhile
    assert job.current_weights().step == snap.step  # the final weights came with the status
    release.touch()
    assert job.wait(30)
    assert set(job.snapshot().final_losses) == {"train_loss", "dev_loss"}


def _no_periodic_updates(trainer: Trainer) -> None:
    """Worker hook: no update goes out on the PUBLISH_S clock, only the ones that are forced."""
    from mlp_core import worker

    worker.PUBLISH_S = 3600.0


def test_the_first_step_and_the_first_evaluation_go_out_at_once(make_job):
    """What a user who just pressed Start waits for is not held back until the next periodic update (issue 16)."""
    job = make_job(steps=LONG, eval_every=50, worker_hook=_no_periodic_updates)
    job.start()
    wait_for(lambda: job.snapshot().step >= 1)
    wait_for(lambda: len(job.snapshot().evals) == 1)
    assert job.snapshot().evals[0].step == 50


def test_a_dataset_travels_to_its_worker_small_and_comes_back_the_same(tiny_dataset):
    """Token ids go to a worker in the smallest integer type (1/8 of int64 for 27 characters) and come back int64."""
    import copy
    import pickle

    from mlp_core.worker import from_wire, to_wire

    wire = to_wire(tiny_dataset)
    assert all(x.dtype == np.uint8 and y.dtype == np.uint8 for x, y in wire.splits.values())
    back = from_wire(pickle.loads(pickle.dumps(wire)))
    for name, (x, y) in tiny_dataset.splits.items():
        assert back.splits[name][0].dtype == torch.long and torch.equal(back.splits[name][0], x)
        assert torch.equal(back.splits[name][1], y)
    assert all(x.dtype == torch.long for x, _ in tiny_dataset.splits.values())  # the job's own copy untouched
    # The word lists travel as one string each and come back as the same lists (an empty one included).
    assert isinstance(wire.train_words, str) and isinstance(tiny_dataset.train_words, list)
    for name in ("words", "train_words", "dev_words", "test_words"):
        assert getattr(back, name) == getattr(tiny_dataset, name)
    empty = copy.copy(tiny_dataset)
    empty.test_words = []
    assert from_wire(pickle.loads(pickle.dumps(to_wire(empty)))).test_words == []
