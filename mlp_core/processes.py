"""The worker processes behind training jobs and in-worker tasks: how they start, and how they end at exit.

`_context()` is the multiprocessing context every worker comes from (forkserver where there is one, with
torch, the worker module and MLflow's client preloaded; spawn elsewhere), `warm_up()` boots its fork server
ahead of a first Start, and `_skip_main_in_workers()` keeps workers from re-importing the server's __main__.
`_LIVE_JOBS` tracks every training job with a live worker, which `_stop_live_jobs` (atexit) suspends or ends.
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver as mp_forkserver
import multiprocessing.spawn as mp_spawn
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .job import TrainingJob

# Every job with a live worker: at interpreter exit their processes are ended (the workers also end
# themselves when the pipe to this process closes, e.g. after a SIGKILL).
_LIVE_JOBS: weakref.WeakSet[TrainingJob] = weakref.WeakSet()


SUSPEND_WAIT_S = 5.0  # at exit, how long tracked workers get (all together) to write their final checkpoints


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (/proc/<pid>/stat field 22); None when there is no such
    process or it is a zombie. With the pid it names one process, never a later one that reuses the pid."""
    try:  # the command name before ")" may hold spaces and parentheses
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in ("Z", "X") else int(fields[19])  # fields[0] is field 3 (the state)


def process_alive(pid: int | None) -> bool:
    """True while the OS has a running (not zombie) process with this id."""
    return pid is not None and process_start(pid) is not None


@atexit.register
def _stop_live_jobs() -> None:
    """At interpreter exit (a server's graceful shutdown): tracked jobs suspend, i.e. write a final resume
    checkpoint and read "interrupted" in the store, so a restart resumes them without losing a step."""
    jobs = list(_LIVE_JOBS)
    for job in jobs:
        if job.tracking is not None:
            job._send(("suspend",))
    deadline = time.monotonic() + SUSPEND_WAIT_S
    for job in jobs:
        proc = job._proc
        if job.tracking is not None and proc is not None:
            proc.join(max(0.0, deadline - time.monotonic()))
        job.stop(timeout=0)


WORKER_NAME = "mlp-training"


def _context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one: a fresh child forks from a small server that has torch imported
    (fast to start) instead of from this process, whose threads make fork unsafe; spawn elsewhere."""
    _skip_main_in_workers()
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        # torch._dynamo: torch.optim imports it on the first optimizer a process builds (~800 modules, 1-2 s
        # measured here): imported once in the fork server, no worker pays for it.
        # MLflow's client and SQL store likewise (~1.5 s): a tracked worker's writer thread would otherwise
        # import them while the first steps train. (A server that never tracks pays it only in this process.)
        ctx.set_forkserver_preload(
            ["mlp_core.worker", "torch._dynamo", "mlflow.tracking", "mlflow.store.tracking.sqlalchemy_store"]
        )
        return ctx
    return multiprocessing.get_context("spawn")


def warm_up() -> None:
    """Start the process that forks workers now, in the background: a first Start then skips its ~2 s boot."""
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        threading.Thread(target=mp_forkserver.ensure_running, name="mlp-warm-up", daemon=True).start()


def _skip_main_in_workers() -> None:
    """Workers do not re-import the parent's __main__ (multiprocessing's default for spawn and forkserver).

    They need nothing from it: their entry point is mlp_core.worker.main. And __main__ is whatever
    launched the server (streamlit's or pytest's script, a user's script without a main guard), which
    would cost every worker its import time and memory, or run that script again.
    """
    original = mp_spawn.get_preparation_data
    if getattr(original, "_skips_main", False):
        return

    def get_preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        if name == WORKER_NAME:
            data.pop("init_main_from_path", None)
            data.pop("init_main_from_name", None)
        return data

    get_preparation_data._skips_main = True  # type: ignore[attr-defined]
    mp_spawn.get_preparation_data = get_preparation_data


__all__ = ["SUSPEND_WAIT_S", "WORKER_NAME", "warm_up"]
