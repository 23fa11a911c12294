"""Long tasks a UI can start, poll and cancel: `BackgroundTask` runs a function in a thread and reports its
progress as `TaskProgress`; `in_worker` makes such a function run in a worker process instead (from the training
jobs' context, mlp_core/processes.py), so the server's thread only waits on a pipe. Nothing here knows about any UI.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

from .processes import WORKER_NAME, _context
from .worker import ERROR, FINISHED, IDLE, RUNNING, STOPPED, to_wire

T = TypeVar("T")


class Cancelled(Exception):
    """Raised inside a task when its job was cancelled."""


@dataclass
class TaskProgress:
    done: int = 0
    total: int = 0
    status: str = IDLE  # idle, running, finished, stopped, error
    message: str = ""
    partial: Any = None  # whatever the task reports so far (e.g. sweep rows)

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 0.0


@dataclass
class BackgroundTask(Generic[T]):
    """Run `fn(report)` in a thread; `report(done, total, partial)` updates progress and raises Cancelled on cancel."""

    fn: Callable[[Callable[[int, int, Any], None]], T]
    progress: TaskProgress = field(default_factory=TaskProgress)
    result: T | None = None
    _cancel: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        """Start (or restart) the task; a restart forgets the previous result and cancellation."""
        self._cancel.clear()
        self.result = None
        self.progress = TaskProgress(status=RUNNING)
        self._thread = threading.Thread(target=self._run, name="mlp-task", daemon=True)
        self._thread.start()

    def cancel(self, timeout: float = 1.0) -> None:
        self._cancel.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _report(self, done: int, total: int, partial: Any = None) -> None:
        if self._cancel.is_set():
            raise Cancelled
        self.progress = TaskProgress(done, total, RUNNING, "", partial)

    def _run(self) -> None:
        try:
            self.result = self.fn(self._report)
            self.progress = TaskProgress(self.progress.total, self.progress.total, FINISHED, "", self.progress.partial)
        except Cancelled:
            self.progress = TaskProgress(self.progress.done, self.progress.total, STOPPED, "cancelled")
        except Exception as exc:
            self.progress = TaskProgress(self.progress.done, self.progress.total, ERROR, f"{type(exc).__name__}: {exc}")


# ---------------------------------------------------------------------- a task in a worker process
TASK_POLL_S = 0.1  # how often the server's thread of an in_worker task checks for a cancel


def in_worker(fn: Callable[..., T], *args: Any, **kwargs: Any) -> Callable[[Callable[[int, int, Any], None]], T]:
    """A `BackgroundTask` function that runs fn(*args, progress=..., **kwargs) in a worker process.

    The process comes from the training jobs' context (`_context()`: forked from the small server that has torch
    imported) and uses one torch thread; the caller's thread only waits on a pipe and forwards fn's progress
    (done, total), so a server does none of fn's tensor work. A cancel ends the process within TASK_POLL_S.
    fn must be picklable (a module-level function); NamesDataset arguments travel with numpy splits.
    """
    from .data import NamesDataset

    def run(report: Callable[[int, int, Any], None]) -> T:
        ctx = _context()
        parent, child = ctx.Pipe(duplex=True)
        wire = tuple(to_wire(a) if isinstance(a, NamesDataset) else a for a in args)
        proc = ctx.Process(target=_task_main, args=(child, fn, wire, kwargs), name=WORKER_NAME, daemon=True)
        try:
            proc.start()
        finally:
            child.close()  # the process holds its end; ours must close so a dead process reads as EOF
        done, total, partial = 0, 0, None
        try:
            while True:
                # The worker's partial result when fn reports one (the LR test's curve so far), else its pid.
                report(done, total, proc.pid if partial is None else partial)  # raises Cancelled after a cancel
                if not parent.poll(TASK_POLL_S):
                    continue
                try:
                    kind, *payload = parent.recv()
                except EOFError:
                    proc.join(1.0)
                    raise RuntimeError(f"the worker process ended unexpectedly (exit code {proc.exitcode})") from None
                if kind == "progress":
                    done, total, partial = payload
                elif kind == "result":
                    return payload[0]
                else:
                    raise RuntimeError(payload[0])
        finally:
            parent.close()  # the process ends itself when its pipe closes; terminate it now anyway
            if proc.is_alive():
                proc.terminate()
                proc.join(1.0)
            if proc.is_alive():
                proc.kill()
                proc.join()

    return run


def _task_main(conn: Any, fn: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> None:
    """Entry point of an in_worker process: run fn, send its progress and its result (or its error) back."""
    import os

    from .data import NamesDataset
    from .worker import from_wire

    def orphaned() -> None:  # the server is gone (or cancelled us): nobody is left to work for
        try:
            while True:
                conn.recv()
        except (EOFError, OSError):
            os._exit(0)

    threading.Thread(target=orphaned, name="mlp-task-listen", daemon=True).start()
    torch.set_num_threads(1)

    def progress(done: int, total: int, partial: Any = None) -> None:
        conn.send(("progress", int(done), int(total), partial))

    args = tuple(from_wire(a) if isinstance(a, NamesDataset) else a for a in args)
    try:
        result = fn(*args, progress=progress, **kwargs)
    except Exception as exc:  # shown as the task's error; the server never sees a traceback
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    else:
        conn.send(("result", result))


__all__ = ["TASK_POLL_S", "BackgroundTask", "Cancelled", "TaskProgress", "in_worker"]
