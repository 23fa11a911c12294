"""The process a TrainingJob trains in: it owns the Trainer and talks to its job over one pipe.

job -> worker: ("run",), ("pause",), ("step", n), ("stop",), ("suspend",), ("park",), read between chunks.
worker -> job: `Update` messages, at most every PUBLISH_S unless the status changes; the last has final=True.

A listener thread turns commands into a queue for the training loop. When the pipe closes (the server is gone,
even killed with SIGKILL) or SIGTERM arrives (a shutdown), a tracked worker suspends: it writes a final resume
checkpoint, marks its run interrupted and exits, so a restarted server can resume the run without losing a
step; an untracked one just exits. A worker never outlives its server. Messages carry numpy arrays, never
tensors: torch would otherwise move them through shared memory, which a plain copy beats at these sizes.
"""

from __future__ import annotations

import copy
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import numpy as np
import torch

from . import resume
from .config import TrainConfig
from .recorder import RunRecorder, Tracking, final_metrics
from .trainer import EvalPoint, Trainer, model_from_state

if TYPE_CHECKING:
    from .data import NamesDataset

# Job states. The life of one job: idle -> running <-> paused -> finished | stopped | diverged | error, and
# interrupted (its process ended by a shutdown or a crash; resumable from its last resume checkpoint), and
# parked (set aside on purpose, e.g. paused in a closed tab: its exact checkpoint written, its process and slot
# freed; Resume continues it as if it had only been paused).
IDLE, RUNNING, PAUSED, FINISHED, STOPPED, DIVERGED, ERROR, INTERRUPTED, PARKED = (
    "idle",
    "running",
    "paused",
    "finished",
    "stopped",
    "diverged",
    "error",
    "interrupted",
    "parked",
)
SUSPEND_GRACE_S = 10.0  # a suspending worker that cannot write its checkpoint in this time exits anyway
CHUNK_SECONDS = 0.1  # target wall time of one chunk: a pause lands within ~0.2 s unless one step is longer
PUBLISH_S = 0.1  # at most this often an update, unless the status changes
WEIGHTS_S = 0.5  # weights larger than SMALL_WEIGHTS go out at most this often (and at every pause / end)
SMALL_WEIGHTS = 1 << 20  # bytes: weights this small go out with every update
MAX_CHUNK = 100_000


def parked_message(step: int) -> str:
    """What a parked run says, wherever it is shown (the job, the store, a restored run)."""
    return f"parked at step {step:,} to free its slot: Resume continues it"


State = dict[str, np.ndarray]


@dataclass
class WorkerSpec:
    """What a worker needs to build its Trainer and start; picklable."""

    config: TrainConfig
    dataset: NamesDataset  # its split tensors as numpy arrays (see `to_wire` / `from_wire`)
    state: State | None  # initial weights; None: the config's own seeded init
    start_step: int = 0
    budget: int | None = None  # steps to run then pause ("step x N" from idle); None: run
    target_dev_loss: float | None = None
    torch_threads: int | None = 1
    hook: Callable[[Trainer], None] | None = None  # called with the Trainer before training (tests inject faults)
    tracking: Tracking | None = None  # record the run in the store (and write resume checkpoints)
    # Go on from this resume checkpoint (config, weights, optimizer, RNG, step): a path, or its bytes for a worker on
    # another machine (a Ray actor, mlp_core/ray_link.py).
    resume_path: str | bytes | None = None


@dataclass
class Update:
    """One message from a worker: the latest numbers plus what is new since the previous message."""

    status: str
    message: str
    alert: str
    step: int
    lr: float
    last_loss: float
    steps_per_sec: float
    seconds_per_step: float  # NaN until the first step has ended
    elapsed: float
    best_dev: float
    best_step: int | None
    diverged_at: int | None
    history: list[tuple[int, np.ndarray]] = field(default_factory=list)  # (first step, per-step losses)
    evals: list[EvalPoint] = field(default_factory=list)  # new evaluation points
    embedding_steps: list[int] | None = None  # the steps of every embedding snapshot the trainer keeps now
    embeddings: dict[int, np.ndarray] = field(default_factory=dict)  # the ones not sent before
    # (start, points) when the trainer's diagnostics changed: the list from index `start` on is now `points`.
    diagnostics: tuple[int, tuple] | None = None
    weights: tuple[int, State] | None = None  # (step, state) of the current weights
    best_weights: tuple[int, State] | None = None  # (best step, state) when the best changed
    final: bool = False
    traceback: str | None = None
    has_numbers: bool = True  # False when the worker failed before it had a Trainer: keep the job's numbers
    run_id: str | None = None  # the run's id in the store, once created
    store_error: str = ""  # why the run is not being saved, "" when it is
    checkpoint_step: int | None = None  # the step of the last resume checkpoint written
    final_losses: dict[str, float] | None = None  # full-split losses of the final weights (finished runs)


WORD_LISTS = ("words", "train_words", "dev_words", "test_words")  # sent as one newline-joined string each


def to_wire(dataset: NamesDataset) -> NamesDataset:
    """A shallow copy whose split tensors are numpy arrays of the smallest integer type the vocabulary fits.

    Token ids as int64 made the lecture's splits 7.8 MB to pickle and send on every Start (~0.1 s of the click's
    wait on this machine); as uint8 they are 1/8 of that. `from_wire` widens them back to int64.
    """
    wire = copy.copy(dataset)
    small = np.min_scalar_type(max(0, dataset.vocab.size - 1))
    wire.splits = {k: (x.numpy().astype(small), y.numpy().astype(small)) for k, (x, y) in dataset.splits.items()}
    # The word lists as one string each: pickling 32k small strings held the server's GIL ~15-35 ms per Start
    # (one string: ~1 ms). A name is one line of its file, so it never holds a newline.
    for name in WORD_LISTS:
        setattr(wire, name, "\n".join(getattr(dataset, name)))
    return wire


def from_wire(dataset: NamesDataset) -> NamesDataset:
    dataset.splits = {
        k: (torch.from_numpy(x.astype(np.int64)), torch.from_numpy(y.astype(np.int64)))
        for k, (x, y) in dataset.splits.items()
    }
    for name in WORD_LISTS:
        joined = getattr(dataset, name)
        setattr(dataset, name, joined.split("\n") if joined else [])
    return dataset


def numpy_state(state: dict[str, torch.Tensor]) -> State:
    return {k: v.detach().to("cpu", copy=True).numpy() for k, v in state.items()}


# ---------------------------------------------------------------------------- the process
def main(conn: Connection, spec: WorkerSpec) -> None:
    """Entry point of the worker process (or of a Ray actor's worker thread, with a connection-like `conn`)."""
    commands: queue.Queue = queue.Queue()
    tracked = spec.tracking is not None
    stopping = threading.Event()  # a stop was asked for: a SIGTERM after it ends the process at once
    threading.Thread(
        target=_listen, args=(conn, commands, tracked, stopping), name="mlp-worker-listen", daemon=True
    ).start()
    if threading.current_thread() is threading.main_thread():  # a Ray actor runs this in a thread: Ray owns signals
        _on_sigterm(commands, tracked, stopping)
    if spec.torch_threads:
        torch.set_num_threads(spec.torch_threads)  # this process only: the server's setting is untouched
    out = _Publisher(conn)
    trainer: Trainer | None = None
    recorder: RunRecorder | None = None
    try:
        dataset = from_wire(spec.dataset)
        if spec.resume_path is not None:
            trainer = resume.restore(resume.load(spec.resume_path), dataset)
            out.resumed(trainer)
        else:
            model = None
            if spec.state is not None:
                vocab = dataset.vocab.size
                model = model_from_state(vocab, spec.config, {k: torch.from_numpy(v) for k, v in spec.state.items()})
            trainer = Trainer(spec.config, dataset, model=model, step=spec.start_step)
        if spec.tracking is not None:
            recorder = out.recorder = RunRecorder(spec.tracking, trainer.config.steps)
        if spec.hook is not None:
            spec.hook(trainer)
        _train(trainer, spec, commands, out)
    except Exception as exc:  # shown to the user as the job's error; the server never sees a traceback
        out.status, out.message = ERROR, f"{type(exc).__name__}: {exc}"
        if recorder is not None and trainer is not None:
            recorder.close(trainer, ERROR, out.message)
        out.publish(trainer, final=True, tb=traceback.format_exc())


def _listen(conn: Connection, commands: queue.Queue, tracked: bool, stopping: threading.Event) -> None:
    try:
        while True:
            command = conn.recv()
            if command[0] == "stop":
                stopping.set()
            commands.put(command)
    except (EOFError, OSError):
        _suspend_or_exit(commands, tracked)  # the job (or its whole server) is gone: nobody is left to train for


def _on_sigterm(commands: queue.Queue, tracked: bool, stopping: threading.Event) -> None:
    """SIGTERM after a stop command ends the process at once (stop() lands mid-step); otherwise (a shutdown of
    the server's process group, a `kill`) it suspends the run like a closed pipe does."""

    def handle(signum: int, frame: object) -> None:
        if stopping.is_set() or not tracked:
            os._exit(0)
        _suspend_or_exit(commands, tracked)

    signal.signal(signal.SIGTERM, handle)


def _suspend_or_exit(commands: queue.Queue, tracked: bool) -> None:
    if not tracked:
        os._exit(0)
    commands.put(("suspend",))
    timer = threading.Timer(SUSPEND_GRACE_S, os._exit, args=(0,))
    timer.daemon = True
    timer.start()


def _train(trainer: Trainer, spec: WorkerSpec, commands: queue.Queue, out: _Publisher) -> None:
    config = trainer.config
    recorder = out.recorder
    budget = spec.budget
    paused = budget is not None
    stop = suspend = False
    park = False  # a suspend asked for by the server to free a slot, not by a shutdown
    chunk = 1  # the first chunk is one step: its time is known (and shown) as soon as it ends
    first_chunk = True
    out.status = RUNNING
    out.publish(trainer, force=True)
    while True:
        waiting = paused and not budget and not stop
        if waiting and out.status != PAUSED:
            out.status = PAUSED
            if recorder is not None:
                recorder.checkpoint(trainer, PAUSED)
            out.publish(trainer, force=True, weights=True)
        for cmd in _commands(commands, block=waiting):
            if cmd[0] == "run":
                paused, budget = False, None
            elif cmd[0] == "pause":
                paused, budget = True, None
            elif cmd[0] == "step":
                paused, budget = True, int(cmd[1])
            elif cmd[0] == "stop":
                stop = True
            elif cmd[0] == "suspend":
                suspend = True
            elif cmd[0] == "park" and recorder is not None:  # only a recorded run can come back from its checkpoint
                suspend = park = True
        if suspend:
            if park:
                out.status, out.message = PARKED, parked_message(trainer.step)
            else:
                out.status, out.message = INTERRUPTED, f"interrupted at step {trainer.step:,}"
            if recorder is not None:
                recorder.suspend(trainer, out.status, out.message)
            out.publish(trainer, final=True)
            os._exit(0)
        if stop:
            out.status, out.message = STOPPED, f"stopped at step {trainer.step:,}"
            break
        if paused and not budget:
            continue
        if trainer.step >= config.steps:
            worse = trainer.worse_than_uniform()  # an end worse than guessing is no success
            out.status, out.message = (DIVERGED, worse) if worse else (FINISHED, "")
            break
        if out.status != RUNNING:
            out.status = RUNNING
            out.publish(trainer, force=True)
        n = chunk if budget is None else min(chunk, budget)
        first = trainer.step
        t0 = time.perf_counter()
        result = trainer.advance(n)
        dt = time.perf_counter() - t0
        out.note_chunk(first, result.losses, result.steps_run, dt)
        if recorder is not None:
            recorder.observe(trainer, first, result, RUNNING)
        if out.seconds_per_step > 0:
            chunk = int(min(max(1, CHUNK_SECONDS / out.seconds_per_step), MAX_CHUNK))
        if budget is not None:
            budget = max(0, budget - result.steps_run)
        if result.diverged:
            out.status = DIVERGED
            out.message = (
                f"diverged at step {trainer.diverged_at:,}: the loss became NaN/inf; kept the weights of step "
                f"{trainer.step:,}, the last known to be finite (try a lower learning rate)"
            )
            break
        if trainer.stop_reason is not None:
            out.status = DIVERGED if trainer.alert else FINISHED
            out.message = trainer.stop_reason
            break
        target = spec.target_dev_loss
        if target is not None and result.evaluated is not None and result.evaluated.dev_loss <= target:
            out.status = FINISHED
            out.message = f"reached dev loss {result.evaluated.dev_loss:.4f} at step {trainer.step:,}"
            break
        # The first step and the first evaluation go out at once (not up to PUBLISH_S later): they are what a
        # user who just pressed Start is waiting for.
        out.publish(trainer, force=first_chunk or (result.evaluated is not None and len(trainer.evals) == 1))
        first_chunk = False
    _finish(trainer, out)


def _finish(trainer: Trainer, out: _Publisher) -> None:
    """The end of a run: full-split losses of its final weights (here, not in the server: they are heavy for a
    big model), its last resume checkpoint and status in the store, then the final update."""
    recorder = out.recorder
    # The ending status and the final weights go out at once: a Stop lands on the page now, not after the
    # full-split evaluation below (~1 s for the lecture's 228k examples on a busy 2-core CPU).
    out.publish(trainer, force=True, weights=True)
    if recorder is not None:
        recorder.checkpoint(trainer, out.status, out.message)  # first: a stop's grace may end us mid-evaluation
    out.final_losses = {f"{split}_loss": trainer.evaluate(split) for split in ("train", "dev")}
    if recorder is not None:  # before the final update, so that it carries the run's id and last checkpoint
        if out.final_losses:
            recorder.log(final_metrics(out.final_losses, trainer.step))
        recorder.close(trainer, out.status, out.message, timeout=4.0)
    out.publish(trainer, final=True)


def _commands(commands: queue.Queue, block: bool) -> list[tuple]:
    """Every queued command; when block, wait for at least one."""
    got = [commands.get()] if block else []
    while True:
        try:
            got.append(commands.get_nowait())
        except queue.Empty:
            return got


class _Publisher:
    """Sends `Update`s: numbers every time, histories and weights only as increments since the last one."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.status, self.message = IDLE, ""
        self.seconds_per_step = float("nan")
        self.steps_per_sec = 0.0
        self.last_loss = float("nan")
        self._history: list[tuple[int, np.ndarray]] = []
        self._evals_sent = 0
        self._embeddings_sent: set[int] = set()
        self._diagnostics_sent: list[int] = []  # the steps of the diagnostics points the job holds
        self._best_sent: int | None = None
        self._last_publish = 0.0
        self._last_weights = 0.0
        self.recorder: RunRecorder | None = None
        self._gone = False
        self.final_losses: dict[str, float] | None = None

    def resumed(self, trainer: Trainer) -> None:
        """The job already holds what the resumed trainer recorded before: send only what comes after."""
        self._evals_sent = len(trainer.evals)
        self._embeddings_sent = {s.step for s in trainer.embedding_snapshots}
        self._best_sent = trainer.best_step

    def note_chunk(self, first_step: int, losses: np.ndarray | None, steps: int, seconds: float) -> None:
        if losses is not None and len(losses):
            self._history.append((first_step, np.asarray(losses, dtype=np.float32)))
            self.last_loss = float(losses[-1])
        if steps > 0 and seconds > 0:
            per_step = seconds / steps
            # A light average: chunk times jitter, but a run that slows down must show it within a second.
            sps = self.seconds_per_step
            self.seconds_per_step = per_step if sps != sps else 0.7 * sps + 0.3 * per_step
            self.steps_per_sec = 1.0 / self.seconds_per_step

    def publish(
        self, trainer: Trainer | None, *, force: bool = False, final: bool = False, weights: bool = False, tb=None
    ) -> None:
        now = time.monotonic()
        if not (force or final or now - self._last_publish >= PUBLISH_S):
            return
        self._last_publish = now
        if trainer is None:  # failed before there was a trainer
            nan = float("nan")
            update = Update(self.status, self.message, "", 0, nan, nan, 0.0, nan, 0.0, nan, None, None)
            update.final, update.traceback, update.has_numbers = final, tb, False
            self._send(update)
            return
        update = Update(
            status=self.status,
            message=self.message,
            alert=trainer.alert,
            step=trainer.step,
            lr=trainer.lr_at(max(0, trainer.step - 1)),
            last_loss=self.last_loss,
            steps_per_sec=self.steps_per_sec,
            seconds_per_step=self.seconds_per_step,
            elapsed=trainer.train_seconds,
            best_dev=trainer.best_dev,
            best_step=trainer.best_step,
            diverged_at=trainer.diverged_at,
            history=self._history,
            evals=list(trainer.evals[self._evals_sent :]),
            final=final,
            traceback=tb,
            final_losses=self.final_losses,
        )
        if self.recorder is not None:
            update.run_id, update.store_error = self.recorder.run_id, self.recorder.error
            update.checkpoint_step = self.recorder.checkpoint_step
        self._history = []
        self._evals_sent = len(trainer.evals)
        snaps = trainer.embedding_snapshots
        steps = [s.step for s in snaps]
        if set(steps) != self._embeddings_sent:
            update.embedding_steps = steps
            update.embeddings = {s.step: s.weights for s in snaps if s.step not in self._embeddings_sent}
            self._embeddings_sent = set(steps)
        update.diagnostics = self._diagnostics_increment(trainer.diagnostics)
        small = sum(p.numel() for p in trainer.model.parameters()) * 4 <= SMALL_WEIGHTS
        if weights or final or small or now - self._last_weights >= WEIGHTS_S:
            update.weights = (trainer.step, numpy_state(trainer.model.state_dict()))
            self._last_weights = now
            best = trainer.best_step
            if best is not None and best != self._best_sent and trainer.best_state is not None:
                update.best_weights = (best, numpy_state(trainer.best_state))
                self._best_sent = best
        self._send(update)

    def _diagnostics_increment(self, points: list) -> tuple[int, tuple] | None:
        """What changed in the trainer's diagnostics since the last send, as (start, points from there on).

        Usually the new point plus the one before it (which lost its saturation map when the new one came);
        everything after a thinning of the list. Sending the whole list at every evaluation cost the server
        ~5 ms of unpickling per evaluation at 100 points, growing with the run.
        """
        steps = [p.step for p in points]
        if steps == self._diagnostics_sent:
            return None
        same = next((i for i, (a, b) in enumerate(zip(steps, self._diagnostics_sent, strict=False)) if a != b), None)
        start = min(len(self._diagnostics_sent), len(steps)) if same is None else same
        start = max(0, min(start, len(self._diagnostics_sent) - 1))  # the previous last point may have changed
        self._diagnostics_sent = steps
        return start, tuple(points[start:])

    def _send(self, update: Update) -> None:
        if self._gone:
            return
        try:
            self.conn.send(update)
        except (BrokenPipeError, EOFError, OSError):
            if self.recorder is None:
                os._exit(0)  # the job is gone
            self._gone = True  # the listener saw the pipe close too: the loop suspends (checkpoint) and exits
