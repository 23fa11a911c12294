"""A TrainingJob's line to its worker process: starting it, sending it commands, and the reader thread.

`WorkerLink` holds the process, its pipe, the reader thread, the event set once a worker has ended, and the
generation a reset bumps so that a reader of an older worker never writes into the run that replaced it. The
reader hands every `Update` to its job (`TrainingJob._apply`, under the job's lock) and, when the process ends
without final words, says why (`death`). The job (mlp_core/job.py) owns one link for its whole life.
"""

from __future__ import annotations

import multiprocessing
import threading
from typing import TYPE_CHECKING, Any

from .processes import _LIVE_JOBS, WORKER_NAME, _context
from .worker import ERROR, IDLE, INTERRUPTED, RUNNING, STOPPED, Update, WorkerSpec
from .worker import main as worker_main

if TYPE_CHECKING:
    from .job import TrainingJob


class WorkerLink:
    """The process plumbing of one TrainingJob; the job's state and snapshots stay with the job."""

    def __init__(self) -> None:
        self.send_lock = threading.Lock()
        self.generation = 0  # bumped by reset: a reader of an older worker must not write into this run
        self.proc: multiprocessing.process.BaseProcess | None = None
        self.conn: Any = None
        self.reader: threading.Thread | None = None
        self.ended = threading.Event()
        self.ended.set()
        self.stopping = False

    @property
    def live(self) -> bool:
        proc = self.proc
        return proc is not None and proc.is_alive()

    def launch(self, job: TrainingJob, spec: WorkerSpec) -> None:
        """Start a worker for `job` from `spec`, and the thread that reads its updates into the job."""
        # One event per worker: a reader of an older worker that ends late must not signal this one's end.
        ended = self.ended = threading.Event()
        self.stopping = False
        job._numbers["status"] = RUNNING  # shown at once; the worker confirms within its first chunk
        job._publish()
        try:
            proc, parent = self.start_worker(spec)
        except Exception:  # e.g. no process could be started: stay idle, say so
            ended.set()
            job._numbers["status"] = IDLE
            job._publish()
            raise
        self.proc, self.conn = proc, parent
        job._resume_path = None  # used by this worker; a later interruption resumes from a newer checkpoint
        _LIVE_JOBS.add(job)
        self.reader = threading.Thread(
            target=self.read, args=(job, self.generation, proc, parent, ended), name="mlp-job-reader", daemon=True
        )
        self.reader.start()

    def start_worker(self, spec: WorkerSpec) -> tuple[Any, Any]:
        """A started worker process and the job's end of its pipe (RayLink starts an actor instead)."""
        ctx = _context()
        parent, child = ctx.Pipe(duplex=True)
        proc = ctx.Process(target=worker_main, args=(child, spec), name=WORKER_NAME, daemon=True)
        try:
            proc.start()
        except Exception:
            parent.close()
            raise
        finally:
            child.close()  # the worker holds its end; ours must close so a dead worker reads as EOF
        return proc, parent

    def send(self, command: tuple) -> None:
        conn = self.conn
        if conn is None or not self.live:
            return
        try:
            with self.send_lock:
                conn.send(command)
        except (OSError, EOFError, ValueError):  # the worker just ended: the reader reports how
            pass

    def read(
        self,
        job: TrainingJob,
        generation: int,
        proc: multiprocessing.process.BaseProcess,  # or what stands in for one (ray_link.ActorProcess)
        conn: Any,
        ended: threading.Event,
    ) -> None:
        """The reader thread: fold each update into the job until the final one (or the worker's death)."""
        final = False
        try:
            while not final:
                update: Update = conn.recv()
                final = update.final
                with job._lock:
                    if generation != self.generation:
                        return
                    job._apply(update)
        except Exception:  # EOF (the worker died), or a message cut short by a kill: the status says which
            pass
        finally:
            proc.join(5.0 if job.tracking is not None else 2.0)  # a tracked one writes to the store after
            if proc.is_alive():  # sent its last words but hangs on the way out
                proc.kill()
                proc.join()
            conn.close()
            with job._lock:
                current = generation == self.generation
                if current:
                    if not final:
                        job._numbers["status"], job._numbers["message"] = job._death(proc.exitcode)
                    job._publish()
            ended.set()
        if current and job.on_finish is not None:
            job.on_finish(job)

    def death(self, exitcode: int | None, step: int, checkpoint_step: int | None, tracked: bool) -> tuple[str, str]:
        """The status and message of a run whose worker ended without final words."""
        at = f"{step:,}"
        if self.stopping:
            return STOPPED, f"stopped at step {at}"
        how = f"was killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"exited ({exitcode})"
        if tracked and checkpoint_step is not None:
            return INTERRUPTED, (
                f"interrupted at step {at}: the training process {how} (out of memory?); Resume goes on from "
                f"step {checkpoint_step:,}, its last checkpoint"
            )
        return ERROR, f"the training process {how} at step {at} (out of memory?); the last weights it sent are kept"


__all__ = ["WorkerLink"]
