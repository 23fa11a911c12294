"""A training run a UI can drive and poll: `TrainingJob`, with its `TrainingSnapshot`s and `WeightsAt`.

Long tasks (`BackgroundTask`, `in_worker`) live in mlp_core/tasks.py and how worker processes start and end
(`warm_up`, the live jobs suspended at exit) in mlp_core/processes.py; both are re-exported here.

A TrainingJob trains in its own worker process (mlp_core/worker.py), never in the caller's: a thread
would share one GIL with every page a server draws (measured: 3,800 steps/s fell to 10 while another
thread built plotly figures) and could not be stopped in the middle of a step. Commands go to the
worker over a pipe and take effect between chunks of ~0.1 s; stop() also terminates the process after a
short grace, so it lands at once even mid-step. The worker publishes increments (new losses, new
evaluations, the weights at most every 0.5 s); a reader thread (worker_link.py) folds them into an immutable
`TrainingSnapshot` that readers take without locking. Nothing here knows about any UI.

Why processes and not one Ray actor per job (bench/bench_job.py, lecture config, 2-core CPU under load):
Start -> first step 0.3 s against 4.7-9.8 s (Ray starts a fresh interpreter per actor; ours fork from a
server with torch imported), a snapshot read 0.1 us against ~1-3 ms (a ray.get per read, every refresh),
305 MB RSS / 136 MB PSS per job against 482 / 306 MB, and no Ray for a single user. Pause and stop land
alike in both (a chunk, or at once by killing the process). Ray stays the tool for sweeps and clusters: with
MLP_RAY_ADDRESS set, a job's worker is an actor on that cluster instead (mlp_core/ray_link.py, chosen in
`_new_link`): the same worker loop, commands and updates, so nothing above the link knows the difference.

The life of a job, which a UI's buttons follow:

    idle --start/step--> running <--pause/resume/step--> paused
    running | paused --> finished | stopped | diverged | error
    running | paused --park--> parked --resume/step--> running   (a recorded run only)

- idle: built, no worker yet. start() runs to config.steps; step(n) runs n steps then pauses.
- running / paused: a worker process exists (and takes one of a server's slots, paused or not).
- finished (all steps, early stopping or the target dev loss), stopped (stop()), diverged (NaN/inf, or
  worse than uniform with config.stop_on_divergence), error (an exception, or the worker died): final.
  A final job never trains again: a new run is a new job (e.g. `continue_from`), and reset() turns this
  job back into a fresh idle one at step 0.
- parked: a recorded run set aside by the server (paused in a closed tab, paused too long, or its slot wanted by
  a queued Start): its worker wrote an exact resume checkpoint and ended, so it holds no slot and no memory;
  resume() goes on from that checkpoint in a new worker, in the same stored run. Unlike interrupted (a crash or
  a shutdown), nothing went wrong.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .config import TrainConfig
from .history import DecimatedSeries, SeriesView
from .model import MLP, build_model, check_memory, count_params, resolve_device
from .processes import (  # noqa: F401 (re-exported: this machinery lived here before processes.py)
    _LIVE_JOBS,
    SUSPEND_WAIT_S,
    WORKER_NAME,
    _context,
    _skip_main_in_workers,
    _stop_live_jobs,
    warm_up,
)
from .ray_link import RayLink, cluster_address  # imports no Ray itself: that waits for a RayLink's first start
from .tasks import TASK_POLL_S, BackgroundTask, Cancelled, TaskProgress, _task_main, in_worker  # noqa: F401 (re-exported)
from .trainer import (
    HISTORY_CAPACITY,
    ContextCounts,
    EmbeddingSnapshot,
    EvalPoint,
    context_counts,
    lr_at,
    mean_loss,
    model_from_state,
)
from .worker import (
    DIVERGED,
    ERROR,
    FINISHED,
    IDLE,
    INTERRUPTED,
    PARKED,
    PAUSED,
    RUNNING,
    STOPPED,
    Update,
    WorkerSpec,
    numpy_state,
    parked_message,
    to_wire,
)
from .worker_link import WorkerLink

if TYPE_CHECKING:
    from .data import NamesDataset
    from .recorder import Tracking
    from .resume import ResumeState
    from .trainer import Trainer

ACTIVE_STATES = (RUNNING, PAUSED)
FINAL_STATES = (FINISHED, STOPPED, DIVERGED, ERROR)
RESUMABLE_STATES = (INTERRUPTED, PARKED)  # no worker; resume() goes on from the run's last resume checkpoint
STOP_GRACE_S = 0.2  # stop(): how long a worker may take to finish its chunk before it is terminated
# A tracked worker sends its final status at once, then writes its last checkpoint and status to the store; it
# exits by itself as soon as that is done (~0.1 s), this is only the bound.
TRACKED_STOP_GRACE_S = 2.0


@dataclass(frozen=True)
class TrainingSnapshot:
    """Everything a UI shows about a run, as of the worker's latest update."""

    status: str
    message: str  # why it ended ("diverged at step N ...", "early stop ...", the error), or ""
    step: int
    total_steps: int
    lr: float
    last_loss: float
    steps_per_sec: float
    elapsed: float  # seconds spent training
    params: int
    config: TrainConfig
    train_history: SeriesView
    evals: tuple[EvalPoint, ...]
    best_dev: float
    best_step: int | None
    embeddings: tuple[EmbeddingSnapshot, ...]
    version: int  # increases with every publish; lets a UI skip redraws
    seconds_per_step: float = math.nan  # measured, known as soon as the first step has ended
    eta_seconds: float = math.nan  # to config.steps at the current pace
    alert: str = ""  # something looks wrong (e.g. worse than uniform guessing) while the run goes on
    weights_step: int = 0  # the step of the weights current_model() returns now
    diverged_at: int | None = None
    diagnostics: tuple = ()  # mlp_core.diagnostics points, as the trainer keeps them
    run_id: str | None = None  # the run's id in the run store (tracked jobs, once created)
    store_error: str = ""  # why this run is not being saved ("" when it is, or when it is not tracked)
    checkpoint_step: int | None = None  # the step of the last resume checkpoint written
    final_losses: dict[str, float] | None = None  # full-split train/dev losses of the final weights

    @property
    def resumable(self) -> bool:
        return self.status in RESUMABLE_STATES

    @property
    def progress(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 1.0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATES

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATES


@dataclass(frozen=True)
class WeightsAt:
    """A CPU model (eval mode) and the step whose weights it holds."""

    model: MLP
    step: int


def _new_link() -> WorkerLink:
    """Where a job trains, decided here only: a Ray actor on the cluster MLP_RAY_ADDRESS names, else (the default)
    a local worker process, which starts in ~0.3 s where an actor takes seconds (bench/bench_ray_jobs.py)."""
    return RayLink() if cluster_address() else WorkerLink()


def _on_link(name: str) -> property:
    """A TrainingJob attribute that reads and writes the same-named state of its WorkerLink."""
    return property(lambda job: getattr(job._link, name), lambda job, value: setattr(job._link, name, value))


class TrainingJob:
    """One run of the Trainer in a worker process, with start / pause / resume / step N / stop / reset.

    torch_threads=1 by default, set in the worker only: measured here, a worker with 2 intra-op threads
    ran the lecture config at ~1,250 steps/s against ~3,700 with 1 (its OpenMP team fights the server's).
    worker_hook (picklable) is called in the worker with its Trainer before training: tests inject faults.
    """

    def __init__(
        self,
        config: TrainConfig,
        dataset: NamesDataset,
        model: MLP | None = None,
        *,
        start_step: int = 0,
        target_dev_loss: float | None = None,
        torch_threads: int | None = 1,
        on_finish: Callable[[TrainingJob], None] | None = None,
        worker_hook: Callable[[Trainer], None] | None = None,
        tracking: Tracking | None = None,
    ) -> None:
        # Everything the worker would refuse is refused here, before any process starts.
        if dataset.block_size != config.block_size:
            dataset = dataset.with_block_size(config.block_size)
        check_memory(dataset.vocab.size, config)
        resolve_device(config.device)
        if len(dataset.splits["train"][0]) == 0:
            raise ValueError("the training split is empty: the dataset needs more words")
        self.config = config
        self.dataset = dataset
        self.target_dev_loss = target_dev_loss
        self.torch_threads = torch_threads
        self.on_finish = on_finish
        self.worker_hook = worker_hook
        self.tracking = tracking  # record the run in the store (mlp_core.recorder) from the worker
        self._resume_path: str | None = None  # the next worker starts from this resume checkpoint
        self._final_losses: dict[str, float] | None = None
        self.error_traceback: str | None = None
        self._lock = threading.RLock()
        self._link = _new_link()  # the worker (process or actor), its pipe and reader thread (properties below)
        self._eval_cache: dict[str, ContextCounts] = {}
        given = None if model is None else {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self._fresh(given, start_step)

    # The worker plumbing's state, kept on the link; readable and settable here as before the link existed.
    _send_lock = _on_link("send_lock")
    _generation = _on_link("generation")
    _proc = _on_link("proc")
    _conn = _on_link("conn")
    _reader = _on_link("reader")
    _ended = _on_link("ended")
    _stopping = _on_link("stopping")

    def _fresh(self, state: dict[str, torch.Tensor] | None, start_step: int) -> None:
        """Idle at start_step with these weights (None: the config's seeded init)."""
        self._given_state = state
        self._start_step = start_step
        if state is None:
            state = build_model(self.dataset.vocab.size, self.config.replace(device="cpu"), "cpu").state_dict()
        self._weights: dict[str, torch.Tensor] = state
        self._weights_step = start_step
        self._best: tuple[int, dict[str, torch.Tensor]] | None = None
        self._best_dev = math.inf  # the dev loss of the weights in self._best
        self._params = count_params(self.dataset.vocab.size, self.config)
        self._history = DecimatedSeries(HISTORY_CAPACITY)
        self._evals: list[EvalPoint] = []
        self._embeddings: dict[int, np.ndarray] = {start_step: state["C"].float().numpy().copy()}
        self._embedding_steps = [start_step]
        self._numbers: dict[str, Any] = {
            "status": IDLE,
            "message": "",
            "alert": "",
            "step": start_step,
            "lr": lr_at(self.config, max(0, start_step - 1)),
            "last_loss": math.nan,
            "steps_per_sec": 0.0,
            "seconds_per_step": math.nan,
            "elapsed": 0.0,
            "best_dev": math.inf,
            "best_step": None,
            "diverged_at": None,
            "run_id": None if self.tracking is None else self.tracking.run_id,
            "store_error": "",
            "checkpoint_step": None,
        }
        self._diagnostics: tuple = ()
        self.error_traceback = None
        self._version = getattr(self, "_version", 0)
        self._publish()

    @classmethod
    def from_resume(
        cls,
        state: ResumeState,
        dataset: NamesDataset,
        tracking: Tracking | None,
        *,
        status: str = INTERRUPTED,
        message: str = "",
        **kwargs: Any,
    ) -> TrainingJob:
        """A job that shows a run as its resume checkpoint holds it (curves, weights, best dev); `status`
        INTERRUPTED makes resume() go on from exactly there, in a new worker, into the same stored run."""
        job = cls(state.config, dataset, tracking=tracking, **kwargs)
        job._load(state, status, message)
        return job

    def _load(self, state: ResumeState, status: str, message: str = "") -> None:
        from .history import DecimatedSeries

        t, meta = state.tensors, state.meta
        with self._lock:
            model = {k[len("model.") :]: v for k, v in t.items() if k.startswith("model.")}
            best = {k[len("best.") :]: v for k, v in t.items() if k.startswith("best.")}
            self._fresh(model, state.step)
            if best and meta["best_step"] is not None:
                self._best = (int(meta["best_step"]), best)
            train = {k.split(".", 2)[2]: v.numpy() for k, v in t.items() if k.startswith("hist.train.")}
            self._history = DecimatedSeries.from_state(train, meta["histories"]["train"])
            self._evals = [EvalPoint(int(s), float(d), float(tr)) for s, d, tr in t["evals"].tolist()]
            if "emb.steps" in t:
                steps, weights = t["emb.steps"].tolist(), t["emb.weights"].numpy()
                self._embeddings = {int(s): weights[i].copy() for i, s in enumerate(steps)}
                self._embedding_steps = sorted(self._embeddings)
            n = self._numbers
            n.update(
                status=status,
                message=message or _resumable_message(status, state.step),
                alert=meta.get("alert") or "",
                best_dev=math.inf if meta["best_dev"] is None else float(meta["best_dev"]),
                best_step=meta["best_step"],
                diverged_at=meta["diverged_at"],
                elapsed=float(meta["train_seconds"]),
                checkpoint_step=state.step,
            )
            last = self._history.view()
            n["last_loss"] = float(last.mean[-1]) if len(last) else math.nan
            self._publish()

    def _resume_from_store(self) -> None:
        """Before a worker goes on with an interrupted run: the job shows the run as its last checkpoint holds it."""
        from dataclasses import replace

        from .store import RunStore

        tracking, run_id = self.tracking, self._numbers["run_id"]
        if tracking is None or run_id is None:
            raise RuntimeError("this run was not saved, so it cannot be resumed: start a new run")
        store = RunStore(tracking.uri)
        path = store.resume_path(run_id)
        state = store.load_resume(run_id)
        self.tracking = replace(tracking, run_id=run_id, params={}, tags={}, words=None)
        self._load(state, INTERRUPTED)
        self._resume_path = str(path)

    # ------------------------------------------------------------------ commands
    def start(self) -> None:
        """Begin training in a worker process (no-op if one is already training this job)."""
        with self._lock:
            if self.live:
                return
            self._require_idle("start")
            self._launch(budget=None)

    def pause(self) -> None:
        """Pause after the current chunk (~0.1 s; also cancels what is left of a "step x N")."""
        self._send(("pause",))

    def resume(self) -> None:
        """Continue a paused job, start an idle one, or go on with an interrupted one from its last resume
        checkpoint. Final states cannot resume: start a new job."""
        with self._lock:
            if self.live:
                self._send(("run",))
                return
            self._require_idle("resume")
            if self._snapshot.status in RESUMABLE_STATES and self._resume_path is None:
                self._resume_from_store()
            self._launch(budget=None)

    def park(self) -> bool:
        """Set a recorded run aside: its worker writes an exact resume checkpoint and ends (freeing its slot and
        memory), and the job reads parked until resume(). Returns False (nothing sent) for a job with no worker;
        an unrecorded job has no checkpoint to come back from, so it cannot be parked (ValueError)."""
        if self.tracking is None:
            raise ValueError("this run is not saved in the run store, so it cannot be parked (it would be lost)")
        with self._lock:
            snap = self._snapshot
            # A run the store never got (or cannot write now) would come back from nothing or from an old checkpoint.
            if not self.live or snap.status not in ACTIVE_STATES or snap.run_id is None or snap.store_error:
                return False
        self._send(("park",))
        return True

    def step(self, n: int) -> None:
        """Run exactly n more steps, then pause (starts the worker if idle); never past config.steps."""
        if n < 1:
            raise ValueError("step count must be at least 1")
        with self._lock:
            if self.live:
                self._send(("step", int(n)))
                return
            self._require_idle("step")
            if self._snapshot.status in RESUMABLE_STATES and self._resume_path is None:
                self._resume_from_store()
            self._launch(budget=int(n))

    def stop(self, timeout: float = 1.0, wait: bool = True) -> bool:
        """End the worker: it gets max(timeout, 0.2 s) (a tracked one 2 s) to finish its chunk and send its last
        words (none mid-way through a step longer than that), then it is terminated.

        Returns True once the worker has ended (or there was none); the snapshot then says "stopped".
        wait=False sends the stop and returns at once (False), ending the worker in a thread: a UI's Stop then
        shows "stopped" as soon as the worker says so (~0.1 s), while the worker still writes its final losses.
        """
        if not wait:
            if self._proc is None:
                return True
            threading.Thread(target=self.stop, args=(timeout,), name="mlp-job-stop", daemon=True).start()
            return False
        with self._lock:
            proc, ended = self._proc, self._ended
            if proc is None:
                return True
            self._stopping = True
        self._send(("stop",))
        # A grace lets the worker end its chunk and send its final weights; pointless when one step is
        # longer than the grace (or the first step has not ended yet): that step is lost either way.
        per_step = self._snapshot.seconds_per_step
        if per_step <= STOP_GRACE_S:
            # A tracked worker always gets the grace: it writes its final checkpoint and status on the way out.
            # Every worker gets it, whatever the caller's timeout: its last words are the run's full-split losses
            # and final weights (the server evaluates nothing itself).
            grace = TRACKED_STOP_GRACE_S if self.tracking is not None else max(timeout, STOP_GRACE_S)
            proc.join(max(0.0, grace))
        if proc.is_alive():
            # A tracked worker gets SIGKILL, not SIGTERM: it takes SIGTERM for a server's shutdown and suspends the
            # run (status interrupted), and SIGTERM may arrive before it has read the stop command just sent (seen
            # under load: a stopped run read "interrupted"). Its last resume checkpoint is at most
            # MLP_CHECKPOINT_EVERY_S old; the job's own status says stopped either way.
            proc.kill() if self.tracking is not None else proc.terminate()
            proc.join(1.0)
        if proc.is_alive():  # SIGTERM ignored (e.g. stuck in native code): SIGKILL cannot be
            proc.kill()
            proc.join()
        # The reader publishes the final status at once after the process ends; wait for that, not for the
        # finish hook (which may need a lock our caller holds).
        if threading.current_thread() is not self._reader:
            ended.wait(5.0)
        return not proc.is_alive()

    def reset(self) -> None:
        """Stop the worker (for good) and start over: a fresh init, step 0, idle."""
        self.stop(timeout=0)
        reader = self._reader
        if reader is not None and reader is not threading.current_thread():
            reader.join(5.0)
        with self._lock:
            self._generation += 1
            self._proc, self._reader, self._stopping = None, None, False
            self._fresh(None, 0)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has ended and its last snapshot is published. True if it has."""
        return self._ended.wait(timeout)

    def continue_from(self, which: str = "best", **kwargs: Any) -> TrainingJob:
        """A new idle job that goes on from this one's best-dev ("best") or current ("current") weights.

        Its step (so its lr schedule) starts at the step of those weights; the optimizer starts afresh.
        """
        at = self.best_weights() if which == "best" else self.current_weights()
        if at is None:
            at = self.current_weights()
        return TrainingJob(self.config, self.dataset, at.model, start_step=at.step, **kwargs)

    # ------------------------------------------------------------------ reading
    def snapshot(self) -> TrainingSnapshot:
        """The latest published state; never blocks on the worker."""
        return self._snapshot

    def current_weights(self) -> WeightsAt:
        """A CPU copy of the latest weights the worker sent (at most ~0.5 s old) and their step."""
        with self._lock:
            state, step = self._weights, self._weights_step
        return WeightsAt(self._model(state), step)

    def best_weights(self) -> WeightsAt | None:
        """A CPU copy of the best-dev weights so far and their step; None before any evaluation."""
        with self._lock:
            best = self._best
        return None if best is None else WeightsAt(self._model(best[1]), best[0])

    def current_model(self) -> MLP:
        """A CPU copy of the latest weights (safe to use while training goes on), in eval mode."""
        return self.current_weights().model

    def best_model(self) -> MLP:
        """A CPU copy of the best-dev weights so far (current weights if never evaluated), in eval mode."""
        best = self.best_weights()
        return best.model if best is not None else self.current_model()

    def evaluate(self, split: str, model: MLP | None = None) -> float:
        """Full-split loss ('train', 'dev', 'test') of a model (default: the current weights), here on the CPU."""
        model = self.current_model() if model is None else model
        if split not in self._eval_cache:
            x, y = self.dataset.splits[split]
            self._eval_cache[split] = context_counts(x, y, self.dataset.vocab.size)
        device = next(model.parameters()).device
        return mean_loss(model, self._eval_cache[split].to(device))

    @property
    def status(self) -> str:
        return self._snapshot.status

    @property
    def live(self) -> bool:
        """A worker process exists and has not ended: it holds one of a server's training slots."""
        proc = self._proc
        return proc is not None and proc.is_alive()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.is_alive() else None

    # ------------------------------------------------------------------ worker plumbing
    def _require_idle(self, what: str) -> None:
        status = self._snapshot.status
        if status not in (IDLE, *RESUMABLE_STATES):
            raise RuntimeError(f"cannot {what} this run: it is {status}, which is final; start a new run (or reset it)")

    def _launch(self, budget: int | None) -> None:
        spec = WorkerSpec(
            config=self.config,
            dataset=to_wire(self.dataset),
            state=None if self._given_state is None else numpy_state(self._given_state),
            start_step=self._start_step,
            budget=budget,
            target_dev_loss=self.target_dev_loss,
            torch_threads=self.torch_threads,
            hook=self.worker_hook,
            tracking=self.tracking,
            resume_path=self._resume_path,
        )
        self._link.launch(self, spec)

    def _send(self, command: tuple) -> None:
        self._link.send(command)

    def _death(self, exitcode: int | None) -> tuple[str, str]:
        n = self._numbers
        return self._link.death(exitcode, n["step"], n["checkpoint_step"], tracked=self.tracking is not None)

    def _apply(self, u: Update) -> None:
        if u.has_numbers:
            for name in self._numbers:
                self._numbers[name] = getattr(u, name)
        else:
            self._numbers["status"], self._numbers["message"] = u.status, u.message
        for first, losses in u.history:
            self._history.extend(first, losses)
        self._evals.extend(u.evals)
        if u.embedding_steps is not None:
            self._embeddings.update(u.embeddings)
            self._embedding_steps = [s for s in u.embedding_steps if s in self._embeddings]
            self._embeddings = {s: self._embeddings[s] for s in self._embedding_steps}
        if u.diagnostics is not None:
            start, points = u.diagnostics
            self._diagnostics = self._diagnostics[:start] + points
        if u.weights is not None:
            self._weights_step = u.weights[0]
            self._weights = {k: torch.from_numpy(v) for k, v in u.weights[1].items()}
        if u.best_weights is not None:
            self._best = (u.best_weights[0], {k: torch.from_numpy(v) for k, v in u.best_weights[1].items()})
            self._best_dev = u.best_dev  # the same update's numbers: the trainer's best when these weights left it
        if u.traceback:
            self.error_traceback = u.traceback
        if u.final_losses:
            self._final_losses = u.final_losses
        self._publish()

    def _publish(self) -> None:
        with self._lock:
            n = self._numbers
            self._version += 1
            sps = n["seconds_per_step"]
            left = max(0, self.config.steps - n["step"])
            self._snapshot = TrainingSnapshot(
                status=n["status"],
                message=n["message"],
                step=n["step"],
                total_steps=self.config.steps,
                lr=n["lr"],
                last_loss=n["last_loss"],
                steps_per_sec=n["steps_per_sec"],
                elapsed=n["elapsed"],
                params=self._params,
                config=self.config,
                train_history=self._history.view(),
                evals=tuple(self._evals),
                # The best the job holds, not the worker's latest numbers: those can name a newer best whose
                # weights never arrived (a stop with no grace), and the label, file name and weights must agree.
                best_dev=self._best_dev if self._best is not None else math.inf,
                best_step=self._best[0] if self._best is not None else None,
                embeddings=tuple(EmbeddingSnapshot(s, self._embeddings[s]) for s in self._embedding_steps),
                version=self._version,
                seconds_per_step=sps,
                eta_seconds=left * sps if n["status"] in ACTIVE_STATES and sps == sps else math.nan,
                alert=n["alert"],
                weights_step=self._weights_step,
                diverged_at=n["diverged_at"],
                diagnostics=self._diagnostics,
                run_id=n["run_id"],
                store_error=n["store_error"],
                checkpoint_step=n["checkpoint_step"],
                final_losses=self._final_losses,
            )

    def _model(self, state: dict[str, torch.Tensor]) -> MLP:
        return model_from_state(self.dataset.vocab.size, self.config.replace(device="cpu"), state, "cpu")


def _resumable_message(status: str, step: int) -> str:
    if status == PARKED:
        return parked_message(step)
    return f"interrupted at step {step:,}" if status == INTERRUPTED else ""


__all__ = [
    "ACTIVE_STATES",
    "FINAL_STATES",
    "RESUMABLE_STATES",
    "BackgroundTask",
    "Cancelled",
    "TaskProgress",
    "TrainingJob",
    "TrainingSnapshot",
    "WeightsAt",
    "in_worker",
]
