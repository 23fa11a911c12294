"""Recording a run into the store from the process that trains it, off the training loop.

The training loop only hands things over (`observe` after each chunk: a few numpy appends; a resume checkpoint
every MLP_CHECKPOINT_EVERY_S seconds: a copy of the state's tensors). A writer thread does the slow parts: it
creates the run, writes the resume checkpoint atomically, and sends metrics and tags in batches at least every
FLUSH_S seconds. A slow, locked or unreachable store delays the log, never a step: the thread keeps what it
could not send (bounded) and says why in `error`, which the dashboard shows as "runs are not being saved".
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import resume
from .store import TAG, RunStore, liveness_tags

if TYPE_CHECKING:
    from .trainer import ChunkResult, Trainer

CHECKPOINT_ENV = "MLP_CHECKPOINT_EVERY_S"
DEFAULT_CHECKPOINT_EVERY_S = 20.0
FLUSH_S = 2.0  # metrics and the heartbeat reach the store at least this often (the bound is 5 s)
TRAIN_POINTS = 1000  # train_loss points per run: the curve the dashboard draws, not every step
MAX_PENDING_METRICS = 200_000  # kept while the store is unreachable; the oldest go first past this


def checkpoint_every_s() -> float:
    raw = os.environ.get(CHECKPOINT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_CHECKPOINT_EVERY_S
    except ValueError:
        raise ValueError(f"environment variable {CHECKPOINT_ENV} must be a number of seconds, got {raw!r}") from None
    return max(0.05, value)


@dataclass
class Tracking:
    """What a training process needs to record its run; picklable (it travels to a worker process)."""

    uri: str
    run_id: str | None = None  # None: the writer creates the run (with name, params, tags below)
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    words: tuple[str, ...] | None = None  # an upload's words, kept with the run so it can resume after a restart
    checkpoint_every_s: float = field(default_factory=checkpoint_every_s)


class RunRecorder:
    """One run's writer: `observe` and `checkpoint` from the training thread, the store's I/O in a thread of its own."""

    def __init__(self, tracking: Tracking, total_steps: int, store: RunStore | None = None) -> None:
        self.tracking = tracking
        self.store = store or RunStore(tracking.uri)
        self.run_id: str | None = tracking.run_id
        self.error = ""  # why runs are not being saved, for the user; "" when all is well
        self.checkpoint_step: int | None = None  # the step of the last resume checkpoint written
        self._window = max(1, total_steps // TRAIN_POINTS)
        self._pending_losses = np.zeros(0)
        self._pending_from = 0
        self._metrics: list[tuple[str, float, int]] = []
        self._tags: dict[str, str] = {}
        self._state: resume.ResumeState | None = None  # the newest checkpoint not yet written
        self._status = "running"
        self._last_checkpoint = time.monotonic()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()  # one flush at a time (the writer's, or a waiting checkpoint's)
        self._wake = threading.Event()
        self._closing = False
        self._resume_path: Path | None = None
        self._last_state: resume.ResumeState | None = None  # the last resume checkpoint written
        self._thread = threading.Thread(target=self._loop, name="mlp-recorder", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ from the training thread
    def observe(self, trainer: Trainer, first_step: int, result: ChunkResult, status: str = "running") -> None:
        """After each chunk: its losses, its evaluation, and a resume checkpoint when one is due."""
        metrics = []
        if result.losses is not None and len(result.losses):
            if len(self._pending_losses) == 0:
                self._pending_from = first_step
            values = np.concatenate([self._pending_losses, result.losses.astype(np.float64)])
            n = len(values) // self._window
            if n:
                means = values[: n * self._window].reshape(n, self._window).mean(1)
                ends = self._pending_from + self._window * np.arange(1, n + 1)
                metrics += [("train_loss", float(m), int(s)) for m, s in zip(means, ends, strict=True)]
                self._pending_from += n * self._window
            self._pending_losses = values[n * self._window :]
        if result.evaluated is not None:
            e = result.evaluated
            metrics += [("dev_loss", e.dev_loss, e.step), ("train_subset_loss", e.train_loss, e.step)]
            if trainer.best_step == e.step:
                metrics.append(("best_dev_loss", trainer.best_dev, e.step))
        with self._lock:
            self._metrics.extend(metrics)
            self._tags.update({f"{TAG}step": str(trainer.step), f"{TAG}seconds": f"{trainer.train_seconds:.2f}"})
            self._status = status
        if time.monotonic() - self._last_checkpoint >= self.tracking.checkpoint_every_s:
            self.checkpoint(trainer, status)

    def checkpoint(self, trainer: Trainer, status: str, message: str = "", *, wait: bool = False) -> None:
        """Capture the trainer now (between chunks: consistent); written by the writer, or here when wait."""
        state = resume.capture(trainer, status=status, message=message)
        self._last_checkpoint = time.monotonic()
        with self._lock:
            self._state = state
            self._status = status
            self._tags.update({f"{TAG}step": str(trainer.step), f"{TAG}seconds": f"{trainer.train_seconds:.2f}"})
        if wait:
            self._flush()
        else:
            self._wake.set()

    def log(self, metrics: list[tuple[str, float, int]] = (), tags: dict[str, str] | None = None) -> None:
        with self._lock:
            self._metrics.extend(metrics)
            self._tags.update(tags or {})

    def close(self, trainer: Trainer, status: str, message: str = "", timeout: float = 10.0) -> None:
        """The final checkpoint and status, written before this returns (or `timeout` passes)."""
        self.checkpoint(trainer, status, message)
        with self._lock:
            self._tags[f"{TAG}message"] = message[:500]
            self._closing = True
        self._wake.set()
        self._thread.join(timeout)

    def suspend(self, trainer: Trainer, status: str = "interrupted", message: str = "", timeout: float = 5.0) -> None:
        """A final checkpoint for a process that is being shut down (the run reads "interrupted") or parked
        (status "parked"); either resumes from it."""
        self.close(trainer, status, message or f"{status} at step {trainer.step:,}", timeout)

    # ------------------------------------------------------------------ the writer thread
    def _loop(self) -> None:
        while True:  # the first flush at once: the run exists (and has an id to show) within a moment of the start
            closing = self._closing
            self._flush()
            if not closing:
                self._wake.wait(FLUSH_S)
                self._wake.clear()
                continue
            if self.run_id is not None and not self.error:
                try:
                    self._write_weights()
                    self.store.end(self.run_id, self._status)
                except Exception as exc:
                    self.error = _why(exc)
            return

    def _flush(self) -> None:
        with self._flush_lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        with self._lock:
            state, self._state = self._state, None
            metrics, self._metrics = self._metrics, []
            tags, self._tags = self._tags, {}
            status = self._status
        try:
            self._ensure_run()
            tags.update(liveness_tags(status))
            # Metrics before the checkpoint: a resume goes on from the checkpoint's step, so every metric up to
            # that step must already be in the store, or a crash between the two would leave a gap in the curve.
            self.store.log(self.run_id, metrics, tags)
            metrics = []
            if state is not None:
                self._write_checkpoint(state)
            self.error = ""
        except Exception as exc:
            self.error = _why(exc)
            with self._lock:  # keep what was not sent, for the next try (the newest state wins)
                self._metrics = (metrics + self._metrics)[-MAX_PENDING_METRICS:]
                self._tags = {**tags, **self._tags}
                if self._state is None and state is not None:
                    self._state = state

    def _ensure_run(self) -> None:
        if self.run_id is not None:
            return
        t = self.tracking
        run_id = self.store.create_run(t.name, t.params, t.tags)
        self.run_id = run_id
        if t.words is not None:
            self.store.save_words(run_id, t.words)

    def _write_checkpoint(self, state: resume.ResumeState) -> None:
        if self._resume_path is None:
            self._resume_path = self.store.resume_path(self.run_id)
        resume.save(self._resume_path, state)
        self.store.upload_resume(self.run_id, self._resume_path)
        self.checkpoint_step = state.step
        self._last_state = state

    def _write_weights(self) -> None:
        """At the end of a run: its current and best-dev weights as plain checkpoints beside the resume checkpoint
        (what a user of MLflow's UI downloads). A diverged run's non-finite weights are not saved."""
        state = self._last_state
        if state is None:
            return
        for name, which in (("current.safetensors", "current"), ("best.safetensors", "best")):
            if which == "best" and not any(k.startswith("best.") for k in state.tensors):
                continue
            try:
                raw = resume.weights_checkpoint(state, which, {"run_id": self.run_id})
            except ValueError:  # CheckpointError: NaN weights; the resume checkpoint still holds what there is
                continue
            self.store.save_weights(self.run_id, name, raw)


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return f"runs are not being saved: {text[:300]}"


def final_metrics(losses: dict[str, float], step: int) -> list[tuple[str, float, int]]:
    """Full-split losses at the end of a run as metrics (final_train_loss, final_dev_loss, final_test_loss)."""
    return [(f"final_{k}", v, step) for k, v in losses.items() if v is not None and math.isfinite(v)]


__all__ = ["RunRecorder", "Tracking", "checkpoint_every_s", "final_metrics"]
