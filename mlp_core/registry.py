"""Server-wide bookkeeping of training runs, one per browser session, with a cap and idle reaping.

A web server trains for many users at once. Each browser session owns a `Run`, found by an
unguessable id kept in its URL, so a reload or a bookmark reattaches to a run that is still training.
The registry is the one place that sees every run: it caps how many jobs train at once, and stops
the jobs of runs that nobody has looked at for a while (a closed tab must not train forever).

A shared server (a class) also needs its slots to go round:
- a recorded run that is paused in a closed tab, or paused for long, is parked (`TrainingJob.park`: its exact
  resume checkpoint written, its worker ended, its slot and memory freed); Resume continues it;
- a Start (or a Resume) when every slot is taken waits in one FIFO queue (`request_start`, `queue_position`)
  instead of being refused; the head starts by itself as soon as a slot frees (a job ends, parks, is stopped or
  reaped), and a paused run is parked at once to make room for it;
- `MLP_MAX_RUN_MINUTES` refuses a Start whose estimated time is longer (`check_run_time`).
Nothing here knows about any UI.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import TrainConfig
from .job import INTERRUPTED, PARKED, PAUSED, RUNNING, TrainingJob
from .processes import warm_up
from .ray_link import cluster_address, cluster_cpus, connect
from .recorder import Tracking
from .store import TAG, RunRecord, RunStore, StoreError, owner_tag, run_params
from .tasks import BackgroundTask, in_worker

if TYPE_CHECKING:
    from .data import NamesDataset
    from .model import MLP

OWNER_PREFIX = "owner:"  # Run.controller of a restored run: only the browser with this owner tag may drive it
MAX_SUMMARIES = 50  # finished runs remembered per session, oldest dropped first
# A run unseen this long has no open tab: an open one refreshes its sidebar every 1-2 s (a hidden tab's timers can
# be throttled to once a minute, hence the margin). Its paused job is parked, its queued Start dropped.
GONE_AFTER_S = 90.0
_LOSSES = ("train_loss", "dev_loss", "test_loss")


class CapacityError(RuntimeError):
    """The server trains as many jobs as it may; the message says what to do."""


class RunTooLongError(CapacityError):
    """The run's estimated time is over the server's limit (MLP_MAX_RUN_MINUTES); the message says how to shorten it."""


class UnknownRunError(KeyError):
    """No run with this id (it expired, was released, or never existed)."""


@dataclass
class RunSummary:
    """One row of the session's "all runs" table: settings, size, time and losses of one training job."""

    label: str
    config: TrainConfig
    dataset: str
    status: str
    params: int
    steps: int
    seconds: float
    train_loss: float = math.nan  # full train split, at finish or on request
    dev_loss: float = math.nan  # full dev split
    test_loss: float = math.nan  # only on an explicit request
    losses_step: int | None = None  # the step whose weights the three losses above describe
    best_dev: float = math.nan
    evals: tuple[tuple[int, float, float], ...] = ()  # (step, dev_loss, train_subset_loss) for the overlay
    run_id: str | None = None  # the job's run in the store (tracked jobs)


@dataclass(frozen=True, eq=False)
class QueuedStart:
    """A Start (or a Resume) waiting in the registry's queue for a free slot, with the job it will start."""

    run_id: str
    job: TrainingJob  # built (idle) when the Start was pressed; a Resume's: the run's parked or interrupted job
    dataset_label: str = ""
    resume: bool = False


@dataclass(eq=False)
class Run:
    """What one browser session trains and has trained. Mutated only under `lock`."""

    run_id: str
    created: float
    last_seen: float
    job: TrainingJob | None = None
    job_label: str = ""
    dataset_label: str = ""
    summaries: dict[str, RunSummary] = field(default_factory=dict)  # by job label, oldest first
    sweep: BackgroundTask | None = None
    sweep_config: TrainConfig | None = None
    overfit: BackgroundTask | None = None  # "overfit one batch" (in a worker process: see job.in_worker)
    checkpoint: Any = None  # a loaded mlp_core.checkpoint.Checkpoint, for sampling / inspecting
    checkpoint_name: str = ""
    upload: tuple[str, str, tuple[str, ...]] | None = None  # (file name, sha256, words) of an uploaded dataset
    notice: str = ""  # a message for the user, e.g. why training stopped while nobody watched
    controller: str = ""  # the id of the one viewer (a UI's browser) that may drive the run; "" = none yet
    store_uri: str | None = None  # where this run's jobs are recorded (None: not recorded)
    paused_since: float | None = None  # when the reaper first saw the current job paused (registry clock)
    on_job_end: Callable[[], None] | None = None  # the registry's: a slot may have freed (the queue moves on)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _jobs_made: int = 0
    # (label, dataset label) of every job this run made; lets a finish hook find its row after a newer job took over
    _labels: weakref.WeakKeyDictionary = field(default_factory=weakref.WeakKeyDictionary, repr=False)

    # ------------------------------------------------------------------ jobs
    def new_job(
        self,
        config: TrainConfig,
        dataset: NamesDataset,
        model: MLP | None = None,
        *,
        start_step: int = 0,
        dataset_label: str = "",
        dataset_source: str = "",
        preset: str = "",
    ) -> TrainingJob:
        """A fresh idle TrainingJob that becomes this run's current job (the previous one is stopped and summarised).

        Start it through `RunRegistry.start_job`, which enforces the server's cap.
        """
        job, label = self.labelled_job(config, dataset, model, start_step, dataset_label, dataset_source, preset)
        self.adopt(job, label)
        return job

    def labelled_job(
        self,
        config: TrainConfig,
        dataset: NamesDataset,
        model: MLP | None,
        start_step: int,
        dataset_label: str,
        dataset_source: str,
        preset: str,
    ) -> tuple[TrainingJob, str]:
        """`build_job` with the dataset's label defaulting to its name; (the job, that label)."""
        label = dataset_label or getattr(dataset, "name", "")
        job = self.build_job(
            config,
            dataset,
            model,
            start_step=start_step,
            dataset_label=label,
            dataset_source=dataset_source,
            preset=preset,
        )
        return job, label

    def build_job(
        self,
        config: TrainConfig,
        dataset: NamesDataset,
        model: MLP | None = None,
        *,
        start_step: int = 0,
        dataset_label: str = "",
        dataset_source: str = "",
        preset: str = "",
        parent: str | None = None,
    ) -> TrainingJob:
        """A TrainingJob whose end is summarised in this run (not yet the current job), recorded in the store
        when this run is tracked (`store_uri`)."""
        tracking = self.tracking_for(config, dataset, dataset_label, dataset_source, preset, parent)
        return TrainingJob(config, dataset, model, start_step=start_step, on_finish=self._job_ended, tracking=tracking)

    @property
    def owner(self) -> str:
        """The store's owner tag of the browser that drives this run ("" when none does)."""
        return owner_tag(self.controller) if self.controller else ""

    def tracking_for(
        self,
        config: TrainConfig,
        dataset: NamesDataset,
        label: str,
        source: str = "",
        preset: str = "",
        parent: str | None = None,
    ) -> Tracking | None:
        """How a new job of this run is recorded: its name, params, tags (owner, this session), and for data that
        exists nowhere else (an upload), a copy of its words."""
        if self.store_uri is None:
            return None
        label = label or getattr(dataset, "name", "") or "dataset"
        source = source or f"upload:{label}"
        tags = {f"{TAG}source": "dashboard", f"{TAG}session": self.run_id, f"{TAG}owner": self.owner}
        if preset:
            tags[f"{TAG}preset"] = preset
        if parent:
            tags[f"{TAG}parent"] = parent
        words = tuple(dataset.words) if source.startswith("upload:") else None
        name = f"{preset or 'custom'} · {label}"
        return Tracking(self.store_uri, None, name, run_params(config, label, source, dataset.words), tags, words)

    def adopt(self, job: TrainingJob, dataset_label: str = "") -> None:
        """Make `job` the current job: the previous one is stopped and summarised, the new one gets the next label."""
        with self.lock:
            old = self.job
            if old is job:
                return
            if old is not None:
                # Ended at once (its process terminated, no grace): the cap must never count a replaced job
                # that still trains. Its finish hook summarises it, from its reader thread, once we let go
                # of the lock; stop() does not wait for that hook.
                old.stop(timeout=0)
                if old.snapshot().step > 0 and old.on_finish != self._job_ended:  # no hook of ours to do it
                    self.record(old)
            self._jobs_made += 1
            self.job = job
            self.job_label = f"#{self._jobs_made}"
            self.dataset_label = dataset_label
            self._labels[job] = (self.job_label, dataset_label)

    def _job_ended(self, job: TrainingJob) -> None:
        """Runs in the ended job's reader thread: its summary, with the full-split losses its worker computed
        (the server evaluates nothing: on a big model that is seconds of CPU and a GB of memory)."""
        snap = job.snapshot()
        if snap.step > 0:
            losses = dict(snap.final_losses or {})
            self.record(job, at_step=snap.weights_step if losses else None, **losses)
        if self.on_job_end is not None:
            self.on_job_end()

    def record(self, job: TrainingJob, *, at_step: int | None = None, **losses: float) -> RunSummary:
        """Create or update the summary row of a job.

        Keyword losses (train_loss=, dev_loss=, test_loss=) are full-split losses of the weights at step
        at_step (default: the job's current step); losses kept from another step are dropped, so the
        row's losses always describe one set of weights.
        """
        snap = job.snapshot()
        with self.lock:
            label, dataset_label = self._labels.get(job, ("?", ""))
            old = self.summaries.get(label)
            kept = {k: getattr(old, k) for k in (*_LOSSES, "losses_step")} if old else {}
            if losses:
                at_step = snap.step if at_step is None else at_step
                if kept.get("losses_step") != at_step:
                    kept = dict.fromkeys(_LOSSES, math.nan)
                kept.update(losses, losses_step=at_step)
            summary = RunSummary(
                label=label,
                config=snap.config,
                dataset=dataset_label,
                status=snap.status,
                params=snap.params,
                steps=snap.step,
                seconds=snap.elapsed,
                best_dev=snap.best_dev,
                evals=tuple((e.step, e.dev_loss, e.train_loss) for e in snap.evals),
                run_id=snap.run_id,
                **kept,
            )
            self.summaries[label] = summary
            while len(self.summaries) > MAX_SUMMARIES:
                self.summaries.pop(next(iter(self.summaries)))
        return summary

    def evaluate_current(self, splits: tuple[str, ...] = ("train", "dev")) -> RunSummary:
        """Full-split losses of the current job's latest weights, on a copy (safe while it trains), recorded."""
        job = self.job
        if job is None:
            raise ValueError("there is no run to evaluate: press Start first")
        at = job.current_weights()  # the weights and their own step: the row's losses describe exactly them
        # In a worker process (heavy for a big model: seconds of CPU, a GB of memory); this thread only waits.
        state = {k: v.detach().numpy() for k, v in at.model.state_dict().items()}
        evaluate = in_worker(split_losses, job.config, job.dataset, state, splits)
        losses = evaluate(lambda done, total, partial: None)
        return self.record(job, at_step=at.step, **losses)

    def history(self) -> list[RunSummary]:
        """Every job of this session, oldest first; the current job's row is live."""
        with self.lock:
            job = self.job
            if job is not None and job.snapshot().step > 0:
                self.record(job)
            return list(self.summaries.values())

    def current_summary(self) -> RunSummary | None:
        with self.lock:
            return self.summaries.get(self.job_label) if self.job is not None else None

    def stop_all(self, timeout: float = 1.0, keep_job: bool = False) -> None:
        """Stop the job (unless keep_job: e.g. it is parking) and any sweep (when the run idles out or is released)."""
        with self.lock:
            job, sweep, overfit = self.job, self.sweep, self.overfit
        if job is not None and not keep_job:
            job.stop(timeout)
        if sweep is not None and sweep.progress.status == RUNNING:
            sweep.cancel(timeout)
        if overfit is not None and overfit.progress.status == RUNNING:
            overfit.cancel(timeout)

    @property
    def busy(self) -> int:
        """How many of the server's training slots this run takes (its job, its LR sweep, its overfit one batch)."""
        n = 0
        if self.job is not None and _is_active(self.job):
            n += 1
        if self.sweep is not None and self.sweep.progress.status == RUNNING:
            n += 1
        if self.overfit is not None and self.overfit.progress.status == RUNNING:
            n += 1
        return n


class RunRegistry:
    """All runs of the server, by id. Thread-safe; the clock is injectable for tests."""

    def __init__(
        self,
        max_active_jobs: int | None = None,
        idle_timeout_s: float | None = None,
        *,
        forget_after_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        store_uri: str | None = None,
        park_after_s: float | None = None,
        gone_after_s: float = GONE_AFTER_S,
        max_run_minutes: float | None = None,
    ) -> None:
        self.store_uri = store_uri  # None: runs are not recorded (a library user's or a test's registry)
        self.max_active_jobs = _env("MLP_MAX_JOBS", 4, int) if max_active_jobs is None else max_active_jobs
        if cluster_address():
            # Jobs train on a Ray cluster: join it now, so that an address that does not answer stops the server
            # at start-up with one line (RayClusterError) instead of failing its first Start. One job per CPU of
            # the cluster as it is now, unless MLP_MAX_JOBS (or the caller) says otherwise.
            connect()
            if max_active_jobs is None and not os.environ.get("MLP_MAX_JOBS", "").strip():
                self.max_active_jobs = max(1, cluster_cpus())
        self.idle_timeout_s = _env("MLP_IDLE_TIMEOUT", 600.0, float) if idle_timeout_s is None else idle_timeout_s
        # A stopped run is kept (a bookmark can still reattach) until it has been idle this long.
        self.forget_after_s = _env("MLP_FORGET_AFTER", 86400.0, float) if forget_after_s is None else forget_after_s
        # A paused recorded run is parked once it has been paused this long (sooner when its tab is gone or a
        # queued Start needs its slot).
        self.park_after_s = _env("MLP_PARK_AFTER_S", 300.0, float) if park_after_s is None else park_after_s
        self.gone_after_s = gone_after_s
        # The longest run a Start may ask for, estimated (None: no limit; a shared server sets MLP_MAX_RUN_MINUTES).
        limit = _env("MLP_MAX_RUN_MINUTES", math.inf, float) if max_run_minutes is None else max_run_minutes
        self.max_run_minutes: float | None = limit if math.isfinite(limit) else None
        if self.max_active_jobs < 1:
            raise ValueError("max_active_jobs must be at least 1")
        if self.max_run_minutes is not None and self.max_run_minutes <= 0:
            raise ValueError("MLP_MAX_RUN_MINUTES must be above 0 (unset it for no limit)")
        self.clock = clock
        self._runs: dict[str, Run] = {}
        self._lock = threading.RLock()
        self._reaper: threading.Thread | None = None
        self._reaper_stop = threading.Event()
        self._reserved: dict[str, tuple[int, Callable[[], bool]]] = {}  # holder -> (slots, still alive?)
        self._queue: list[QueuedStart] = []  # waiting Starts, oldest first; at most one per run
        self._parking: weakref.WeakSet[TrainingJob] = weakref.WeakSet()  # asked to park, worker not yet ended
        warm_up()  # the worker launcher boots while the first user is still choosing settings

    # ------------------------------------------------------------------ runs
    def create(self) -> str:
        """A new empty run; returns its unguessable id."""
        run_id = secrets.token_urlsafe(16)
        now = self.clock()
        with self._lock:
            self._runs[run_id] = self._new_run(run_id, now)
        return run_id

    def _new_run(self, run_id: str, now: float) -> Run:
        return Run(run_id, created=now, last_seen=now, store_uri=self.store_uri, on_job_end=self.promote)

    # ------------------------------------------------------------------ the store (runs that outlive the server)
    def restore(self, run_id: str) -> Run | None:
        """After a restart: the run a link names, rebuilt from the store (its newest job; interrupted ones resume).

        None when the store has no job of that run; StoreError / ResumeError / DatasetError say what failed.
        """
        if self.store_uri is None or not run_id:
            return None
        store = RunStore(self.store_uri)
        records = store.runs(session=run_id, max_results=1)
        if not records:
            return None
        job = self.job_from_record(records[0], store)
        now = self.clock()
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                run = self._runs[run_id] = self._new_run(run_id, now)
        with run.lock:
            if run.job is None:
                run.adopt(job, records[0].dataset)
                # Nobody drives it until its owner's browser comes back (state.start_session checks the owner).
                run.controller = OWNER_PREFIX + records[0].owner
        return run

    def open_record(self, run_id: str, record: RunRecord) -> TrainingJob:
        """Make a stored run the current job of the session's run (the Runs page's "open")."""
        run = self._run(run_id)
        store = RunStore(self.store_uri)
        job = self.job_from_record(record, store)
        with run.lock:
            run.adopt(job, record.dataset)
        store.set_tags(record.run_id, {f"{TAG}session": run_id})  # the session's link now restores this run
        return job

    def job_from_record(self, record: RunRecord, store: RunStore) -> TrainingJob:
        """A job that shows a stored run from its last resume checkpoint; an interrupted one can resume."""
        from .data import make_dataset

        if record.status in ("running", "paused"):
            raise StoreError(f"run {record.name!r} is {record.status} in another process; open it there")
        state = store.load_resume(record.run_id)
        config = state.config
        words = store.dataset_words(record)
        dataset = make_dataset(words, block_size=config.block_size, split_seed=config.split_seed)
        dataset.name = record.dataset or dataset.name
        tracking = Tracking(store.uri, record.run_id)
        kept = ("finished", "stopped", "diverged", "error", PARKED)  # anything else was cut short: interrupted
        status = record.status if record.status in kept else INTERRUPTED
        message = record.tags.get(f"{TAG}message", "") if status not in (INTERRUPTED, PARKED) else ""
        return TrainingJob.from_resume(state, dataset, tracking, status=status, message=message)

    def get(self, run_id: str | None) -> Run | None:
        """The run with this id (and mark it seen), or None if there is none."""
        if not run_id:
            return None
        with self._lock:
            run = self._runs.get(run_id)
            if run is not None:
                run.last_seen = self.clock()
            return run

    def touch(self, run_id: str) -> None:
        """Mark a run as looked at now (a page view or a live refresh)."""
        if self.get(run_id) is None:
            raise UnknownRunError(run_id)

    def release(self, run_id: str) -> None:
        """Stop a run's work and forget it; unknown ids are ignored."""
        with self._lock:
            run = self._runs.pop(run_id, None)
            self._dequeue(run_id)
        if run is not None:
            run.stop_all()

    def release_all(self) -> None:
        """Stop and forget every run (server shutdown, tests)."""
        with self._lock:
            run_ids = list(self._runs)
        for run_id in run_ids:
            self.release(run_id)

    def __len__(self) -> int:
        return len(self._runs)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._runs

    # ------------------------------------------------------------------ capacity
    def active_jobs(self) -> int:
        """Training jobs and LR sweeps running or paused, server-wide."""
        with self._lock:
            return sum(run.busy for run in self._runs.values()) + self.reserved_slots()

    def reserve_slots(self, holder: str, wanted: int, alive: Callable[[], bool]) -> int:
        """Up to `wanted` free slots of the cap for work outside the runs (a sweep's concurrent trials), held
        while alive() is true; returns how many (at least 1), or CapacityError when none is free."""
        with self._lock:
            self._reserved.pop(holder, None)  # a holder's new reservation replaces its old one
            free = self.max_active_jobs - self.active_jobs()
            if free < 1:
                raise CapacityError(
                    f"The server is already training {self.active_jobs()} runs or trials (the limit is "
                    f"{self.max_active_jobs}); stop one of yours or wait a few minutes and try again."
                )
            granted = max(1, min(int(wanted), free))
            self._reserved[holder] = (granted, alive)
            return granted

    def release_slots(self, holder: str) -> None:
        with self._lock:
            self._reserved.pop(holder, None)

    def reserved_slots(self) -> int:
        """Slots held by reservations whose work still runs (ended ones are dropped)."""
        with self._lock:
            for holder, (_, alive) in list(self._reserved.items()):
                if not alive():
                    del self._reserved[holder]
            return sum(n for n, _ in self._reserved.values())

    def _busy_elsewhere(self, replacing: Any = None) -> int:
        busy = self.active_jobs()
        if replacing is not None and _is_active(replacing):
            busy -= 1  # the slot this run frees by replacing its own work
        return busy

    def _require_slot(self, run: Run, replacing: Any = None) -> None:
        busy_elsewhere = self._busy_elsewhere(replacing)
        if busy_elsewhere >= self.max_active_jobs:
            runs = f"{busy_elsewhere} run{'s' if busy_elsewhere != 1 else ''}"
            raise CapacityError(
                f"The server is already training {runs} (the limit is {self.max_active_jobs}); "
                "stop one of yours or wait a few minutes and try again."
            )

    def _run(self, run_id: str) -> Run:
        run = self.get(run_id)
        if run is None:
            raise UnknownRunError(run_id)
        return run

    def start_job(self, run_id: str, job: TrainingJob, dataset_label: str = "") -> None:
        """Make `job` the run's current job and start it, unless the server is at its cap (CapacityError)."""
        run = self._run(run_id)
        with self._lock, run.lock:
            self._require_slot(run, replacing=run.job)
            self._dequeue(run_id)  # started now: a Start it had queued is superseded
            run.adopt(job, dataset_label)
            run.notice = ""
            job.start()

    def start_new_job(
        self,
        run_id: str,
        config: TrainConfig,
        dataset: NamesDataset,
        model: MLP | None = None,
        *,
        start_step: int = 0,
        dataset_label: str = "",
        dataset_source: str = "",
        preset: str = "",
    ) -> TrainingJob:
        """Check the cap, build a job for the run (replacing its current one) and start it.

        The job is built outside the locks (it can take seconds, e.g. a first CUDA init), so other
        sessions never wait for it; start_job checks the cap again before starting.
        """
        run = self._run(run_id)
        with self._lock:
            self._require_slot(run, replacing=run.job)  # refuse early rather than build for nothing
        job, label = run.labelled_job(config, dataset, model, start_step, dataset_label, dataset_source, preset)
        self.start_job(run_id, job, label)
        return job

    def continue_job(self, run_id: str, which: str = "best", dataset_label: str = "") -> TrainingJob:
        """A new job for the run from its current job's best-dev ("best") or latest ("current") weights, started.

        The new job's step, so its lr schedule, resumes at the step of those weights (`TrainingJob.continue_from`).
        Its default label says where it came from.
        """
        run = self._run(run_id)
        old = run.job
        if old is None:
            raise ValueError("there is no run to continue: press Start first")
        with self._lock:
            self._require_slot(run, replacing=old)  # refuse early rather than build for nothing
        tracking = None
        if old.tracking is not None:
            parent = old.snapshot().run_id
            tracking = run.tracking_for(old.config, old.dataset, run.dataset_label, parent=parent)
            if tracking is not None and old.tracking.params:  # the parent's own dataset source and preset
                tracking.params["dataset_source"] = old.tracking.params.get("dataset_source", "")
                tracking.words = old.tracking.words
        job = old.continue_from(which, on_finish=run._job_ended, tracking=tracking)
        if not dataset_label:
            weights = "best-dev weights" if which == "best" and old.best_weights() is not None else "latest weights"
            dataset_label = f"{run.dataset_label} from {run.job_label}'s {weights} (step {job.snapshot().step:,})"
        self.start_job(run_id, job, dataset_label)
        return job

    def resume_job(self, run_id: str) -> None:
        """Resume the run's paused job, within the cap."""
        run = self._run(run_id)
        with self._lock, run.lock:
            if run.job is None:
                raise ValueError("there is no run to resume: press Start first")
            if not run.job.snapshot().active:
                self._require_slot(run)
            run.notice = ""
            run.job.resume()

    def step_job(self, run_id: str, n: int) -> None:
        """Run n more steps of the run's current job, then pause, within the cap."""
        run = self._run(run_id)
        with self._lock, run.lock:
            if run.job is None:
                raise ValueError("there is no run to step: press Start first")
            if not run.job.snapshot().active:
                self._require_slot(run)
            run.notice = ""
            run.job.step(n)

    def start_sweep(self, run_id: str, task: BackgroundTask, config: TrainConfig) -> None:
        """Start an LR range test for the run (replacing its previous one), within the cap."""
        run = self._run(run_id)
        with self._lock, run.lock:
            old = run.sweep
            self._require_slot(run, replacing=old)
            if old is not None and old is not task:
                old.cancel(timeout=0)
            run.sweep, run.sweep_config = task, config
            task.start()

    def start_overfit(self, run_id: str, task: BackgroundTask) -> None:
        """Start an "overfit one batch" for the run (replacing its previous one), within the cap."""
        run = self._run(run_id)
        with self._lock, run.lock:
            old = run.overfit
            self._require_slot(run, replacing=old)
            if old is not None and old is not task:
                old.cancel(timeout=0)
            run.overfit = task
            task.start()

    # ------------------------------------------------------------------ the queue
    def check_run_time(self, config: TrainConfig, seconds: float) -> None:
        """RunTooLongError when a run estimated to take `seconds` is over the server's MLP_MAX_RUN_MINUTES."""
        if self.max_run_minutes is None or seconds <= self.max_run_minutes * 60:
            return
        minutes = self.max_run_minutes
        fits = max(1, int(config.steps * minutes * 60 / seconds))
        raise RunTooLongError(
            f"This run would take about {_about(seconds)} on this server, and this server allows runs of at most "
            f"{minutes:g} minute{'s' if minutes != 1 else ''} (MLP_MAX_RUN_MINUTES). Lower the steps to about "
            f"{fits:,} or fewer (or the batch size or model size), then press Start."
        )

    def request_start(
        self,
        run_id: str,
        config: TrainConfig,
        dataset: NamesDataset,
        model: MLP | None = None,
        *,
        start_step: int = 0,
        dataset_label: str = "",
        dataset_source: str = "",
        preset: str = "",
    ) -> int:
        """A new job for the run: started now when a slot is free (returns 0), else queued (returns its position,
        1 = next). A run queues at most once: a new Start replaces its queued one, keeping its place."""
        run = self._run(run_id)
        job, label = run.labelled_job(config, dataset, model, start_step, dataset_label, dataset_source, preset)
        return self._start_or_queue(QueuedStart(run_id, job, label))

    def request_resume(self, run_id: str) -> int:
        """Resume the run's job: at once when it still has its worker or a slot is free (returns 0), else queued
        (its position). A parked or interrupted job needs a slot; a paused one holds its own."""
        run = self._run(run_id)
        job = run.job
        if job is None:
            raise ValueError("there is no run to resume: press Start first")
        if job.live or job.snapshot().active:
            self.resume_job(run_id)
            return 0
        return self._start_or_queue(QueuedStart(run_id, job, run.dataset_label, resume=True))

    def _start_or_queue(self, entry: QueuedStart) -> int:
        run = self._run(entry.run_id)
        with self._lock:
            at = self._queued_index(entry.run_id)
            first = at == 0 or (at is None and not self._queue)
            # Replacing its own training job takes no new slot: it never waits behind others.
            replacing = run.job if not entry.resume and run.job is not None and _is_active(run.job) else None
            if (first or replacing is not None) and self._busy_elsewhere(replacing) < self.max_active_jobs:
                self._begin(entry)  # a refusal (CapacityError from a race, a bad job) reaches the caller
                return 0
            if at is None:
                self._queue.append(entry)
            else:
                self._queue[at] = entry
            position = self._queued_index(entry.run_id) + 1
        self._park_for_queue()
        return position

    def _begin(self, entry: QueuedStart) -> None:
        """Start a queued entry's job (under self._lock)."""
        self._dequeue(entry.run_id)
        if entry.resume:
            self.resume_job(entry.run_id)
        else:
            self.start_job(entry.run_id, entry.job, entry.dataset_label)

    def queue_position(self, run_id: str) -> tuple[int, int] | None:
        """(position, queue length) of the run's waiting Start, position 1 = next; None when it is not queued."""
        with self._lock:
            at = self._queued_index(run_id)
            return None if at is None else (at + 1, len(self._queue))

    def queued(self, run_id: str) -> QueuedStart | None:
        with self._lock:
            at = self._queued_index(run_id)
            return None if at is None else self._queue[at]

    def cancel_queued(self, run_id: str) -> bool:
        """Take the run's Start out of the queue (True if it was queued); the runs behind it move up."""
        with self._lock:
            return self._dequeue(run_id)

    def promote(self) -> list[str]:
        """Start queued requests, oldest first, while there are free slots; the run ids started.

        Called when a job of any run ends (a slot may have freed), on every reap, and by a waiting browser's refresh.
        """
        started = []
        with self._lock:
            while self._queue:
                head = self._queue[0]
                run = self._runs.get(head.run_id)
                if run is None or (head.resume and run.job is not head.job):  # released, or the job was replaced
                    self._queue.pop(0)
                    continue
                if self._busy_elsewhere() >= self.max_active_jobs:
                    break
                try:
                    self._begin(head)
                except Exception as exc:  # its owner reads why in the run's notice; the queue goes on
                    run.notice = f"Your queued run could not start: {exc}"
                    continue
                started.append(head.run_id)
        return started

    def _queued_index(self, run_id: str) -> int | None:
        return next((i for i, q in enumerate(self._queue) if q.run_id == run_id), None)

    def _dequeue(self, run_id: str) -> bool:
        with self._lock:
            at = self._queued_index(run_id)
            if at is not None:
                del self._queue[at]
            return at is not None

    # ------------------------------------------------------------------ parking
    def park(self, run_id: str) -> bool:
        """Park the run's paused (or running) recorded job now: True if it was asked to (see TrainingJob.park)."""
        run = self._run(run_id)
        return self._park(run)

    def _park(self, run: Run) -> bool:
        job = run.job
        if job is None or job.tracking is None or not job.park():
            return False
        self._parking.add(job)
        run.paused_since = None
        return True

    def _park_for_queue(self) -> None:
        """Park paused runs, longest paused first, for the queued Starts that the free slots cannot take."""
        with self._lock:
            free = self.max_active_jobs - self.active_jobs()
            freeing = sum(1 for job in self._parking if job.live)
            wanted = len(self._queue) - max(0, free) - freeing
            if wanted <= 0:
                return
            now = self.clock()
            paused = [run for run in self._runs.values() if _parkable(run.job) and run.job not in self._parking]
            paused.sort(key=lambda run: run.paused_since if run.paused_since is not None else now)
        for run in paused[:wanted]:
            self._park(run)

    # ------------------------------------------------------------------ reaping
    def reap_idle(self, now: float | None = None) -> list[str]:
        """Stop the work of runs unseen for idle_timeout_s; forget runs unseen for forget_after_s.

        Returns the ids whose jobs were stopped. Cheap: call it on every page view.
        """
        now = self.clock() if now is None else now
        stopped, forgotten = [], []
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            idle = now - run.last_seen
            if idle >= self.forget_after_s:
                forgotten.append(run.run_id)
            elif idle >= self.idle_timeout_s and run.busy:
                minutes = self.idle_timeout_s / 60
                parked = self._park(run)  # a recorded job: set aside, Resume continues it
                if parked:
                    run.notice = (
                        f"Training was parked because nobody looked at this run for {minutes:g} minutes: "
                        "**Resume** continues it from where it was."
                    )
                else:
                    run.notice = (
                        f"Training was stopped because nobody looked at this run for {minutes:g} minutes; "
                        "its weights are kept: sample or download them, or continue from them on the Checkpoints page."
                    )
                run.stop_all(timeout=0, keep_job=parked)  # no waiting: reaping runs on page views too
                stopped.append(run.run_id)
            else:
                self._park_if_due(run, now, idle)
            if idle >= self.gone_after_s and self._dequeue(run.run_id):
                run.notice = "Your queued Start was dropped: nobody was looking at this run any more."
        for run_id in forgotten:
            self.release(run_id)
        self._park_for_queue()
        self.promote()
        return stopped

    def _park_if_due(self, run: Run, now: float, idle: float) -> None:
        """Park a paused recorded job whose browser has gone, or that has been paused for park_after_s."""
        job = run.job
        if job is None or job.snapshot().status != PAUSED:
            run.paused_since = None
            return
        if run.paused_since is None:
            run.paused_since = now
        if idle >= self.gone_after_s or now - run.paused_since >= self.park_after_s:
            self._park(run)

    def start_reaper(self, interval_s: float = 60.0) -> None:
        """Reap from a daemon thread every interval_s seconds (idempotent)."""
        with self._lock:
            if self._reaper is not None and self._reaper.is_alive():
                return
            self._reaper_stop.clear()
            self._reaper = threading.Thread(target=self._reap_loop, args=(interval_s,), name="mlp-reaper", daemon=True)
            self._reaper.start()

    def stop_reaper(self) -> None:
        self._reaper_stop.set()

    def _reap_loop(self, interval_s: float) -> None:
        while not self._reaper_stop.wait(interval_s):
            self.reap_idle()


def split_losses(
    config: TrainConfig, dataset: NamesDataset, state: dict, splits: tuple[str, ...], progress: Any = None
) -> dict[str, float]:
    """Full-split losses ("<split>_loss") of the weights `state` (numpy arrays): run in a worker by in_worker."""
    import torch

    from .trainer import context_counts, mean_loss, model_from_state

    model = model_from_state(
        dataset.vocab.size, config.replace(device="cpu"), {k: torch.from_numpy(v) for k, v in state.items()}
    )
    losses = {}
    for i, split in enumerate(splits):
        x, y = dataset.splits[split]
        losses[f"{split}_loss"] = mean_loss(model, context_counts(x, y, dataset.vocab.size))
        if progress is not None:
            progress(i + 1, len(splits))
    return losses


def _env(name: str, default: float, kind: type) -> Any:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return kind(default)
    try:
        return kind(raw)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"environment variable {name} must be {what}, got {raw!r}") from None


def _parkable(job: TrainingJob | None) -> bool:
    """A paused recorded job with a live worker (parking anything else frees nothing, or loses the run)."""
    if job is None or job.tracking is None or not job.live:
        return False
    snap = job.snapshot()
    return snap.status == PAUSED and snap.run_id is not None and not snap.store_error


def _about(seconds: float) -> str:
    """A rough duration for a message: 25 minutes, 46 hours, 1,934 days."""
    if seconds < 5400:
        return f"{seconds / 60:,.0f} minutes"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:,.0f} hours"
    return f"{seconds / 86400:,.0f} days"


def _is_active(work: Any) -> bool:
    if isinstance(work, TrainingJob):
        return work.live or work.snapshot().active  # a live worker process trains, whatever its last snapshot
    if isinstance(work, BackgroundTask):
        return work.progress.status == RUNNING
    return False


__all__ = [
    "OWNER_PREFIX",
    "CapacityError",
    "QueuedStart",
    "Run",
    "RunRegistry",
    "RunSummary",
    "RunTooLongError",
    "UnknownRunError",
]
