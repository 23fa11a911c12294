"""Who may change a run: the one check every page action that changes the session's run goes through.

A page never changes a run through the registry itself: it asks `driver(run)` for a `Driver`, which only the
browser that drives the run gets (a watcher of a shared link gets `NotDriving`, with the message to show),
and acts through the Driver's methods. Callbacks use `guarded`, which hands them the Driver or records the
refusal. What changes only this session (the sidebar's widgets, which model a page shows) needs no Driver. A
stored run is changed only by the browser that owns it (`state.my_run`), as `rename_stored_run` does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from dashboard import state
from mlp_core.job import RUNNING, TrainingJob
from mlp_core.registry import Run
from mlp_core.tasks import BackgroundTask

WATCHING = (
    "You are watching this run (read-only): it belongs to another browser. Press **Start** in the sidebar for a "
    "run of your own."
)


class NotDriving(PermissionError):
    """This browser only watches the run; the message says what to do."""


@dataclass(frozen=True)
class Driver:
    """The actions that change a run, for the browser that drives it (made only by `driver`)."""

    run: Run

    def start_new_job(self, config: Any, dataset: Any, *args: Any, **kwargs: Any) -> TrainingJob:
        """A new job for the run (its current one ends), within the server's cap and run-time limit."""
        _within_time_limit(config, dataset)
        return state.registry().start_new_job(self.run.run_id, config, dataset, *args, **kwargs)

    def request_start(self, *args: Any, **kwargs: Any) -> int:
        """A new job for the run: started now (0), or queued while every slot is taken (its place, 1 = next)."""
        return state.registry().request_start(self.run.run_id, *args, **kwargs)

    def request_resume(self) -> int:
        """Resume the run's job: at once (0), or queued while every slot is taken (its place)."""
        return state.registry().request_resume(self.run.run_id)

    def cancel_queued(self) -> bool:
        """Take the run's waiting Start (or Resume) out of the server's queue."""
        return state.registry().cancel_queued(self.run.run_id)

    def continue_job(self, which: str = "best") -> TrainingJob:
        job = self.run.job
        if job is not None:
            _within_time_limit(job.config, job.dataset)
        return state.registry().continue_job(self.run.run_id, which)

    def resume_job(self) -> None:
        """Resume a paused job, or go on with an interrupted one from its last checkpoint, within the cap."""
        state.registry().resume_job(self.run.run_id)

    def step_job(self, n: int) -> None:
        state.registry().step_job(self.run.run_id, n)

    def pause_job(self) -> None:
        if self.run.job is not None:
            self.run.job.pause()

    def stop_job(self) -> None:
        """Stop the run's job; returns as soon as the stop is sent (the worker ends in the background)."""
        if self.run.job is not None:
            self.run.job.stop(wait=False)

    def new_idle_job(self, *args: Any, **kwargs: Any) -> TrainingJob:
        """An idle job for the run (e.g. the first Step x N builds it), replacing its ended one."""
        return self.run.new_job(*args, **kwargs)

    def open_record(self, record: Any) -> TrainingJob:
        """Make a stored run (one this browser owns: state.my_run) the run's current job."""
        return state.registry().open_record(self.run.run_id, record)

    def start_overfit(self, task: BackgroundTask) -> None:
        state.registry().start_overfit(self.run.run_id, task)

    def start_lr_sweep(self, task: BackgroundTask, config: Any) -> None:
        state.registry().start_sweep(self.run.run_id, task, config)

    def cancel_lr_sweep(self) -> None:
        task = self.run.sweep
        if task is not None and task.progress.status == RUNNING:
            task.cancel()

    def load_checkpoint(self, checkpoint: Any, name: str) -> None:
        """Make a checkpoint the run's loaded one (Sample, Inside the network, Keep training)."""
        with self.run.lock:
            self.run.checkpoint, self.run.checkpoint_name = checkpoint, name


def _within_time_limit(config: Any, dataset: Any) -> None:
    """RunTooLongError past a shared server's MLP_MAX_RUN_MINUTES, whichever button starts the run (the sidebar's
    Start, Keep training, an ablation, Continue); no step is timed on a server without the limit."""
    reg = state.registry()
    if reg.max_run_minutes is not None:
        from mlp_core.trainer import estimate_run_seconds

        reg.check_run_time(config, estimate_run_seconds(config, dataset))


def driver(run: Run | None = None) -> Driver:
    """A Driver for the session's run (or `run`), or NotDriving when this browser only watches it."""
    run = run if run is not None else state.current_run()
    if not state.drives(run):
        raise NotDriving(WATCHING)
    return Driver(run)


def rename_stored_run(store_run_id: str, name: str) -> str:
    """Rename a stored run of this browser's (the Runs page, Train vs dev); its new name, as the store keeps it.

    Ownership is state.my_run's check (PermissionError for another browser's run); the store tidies the name
    (StoreError for an empty one).
    """
    record = state.my_run(store_run_id)
    state.store().rename(record.run_id, name)
    return " ".join(name.split())


def guarded(outcome_key: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A button callback that gets the Driver as its first argument; a watcher's click records
    ("error", WATCHING) under outcome_key for the page to show, and changes nothing."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        @functools.wraps(fn)
        def callback(*args: Any, **kwargs: Any) -> None:
            try:
                d = driver()
            except NotDriving as exc:
                st.session_state[outcome_key] = ("error", str(exc))
                return
            fn(d, *args, **kwargs)

        return callback

    return wrap
