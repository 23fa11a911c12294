"""A TrainingJob's worker as a Ray actor on a cluster: `RayLink`, the transport beside WorkerLink's process.

With MLP_RAY_ADDRESS=host:port a server joins that Ray cluster once (`connect`, at start-up: an address that does
not answer is one line, not a hang) and every job it starts trains in an actor there (`_JobActor`, one CPU).
The actor runs the same worker loop, mlp_core.worker.main, with a connection made of two queues: the loop's
updates stream back through a Ray streaming generator (`run`), the job's commands come in through another
method of the same threaded actor (`send`). On the server `_ServerConn` gives WorkerLink's reader thread the
recv()/send() a pipe gives it, and `ActorProcess` stands in for the multiprocessing.Process (is_alive, join,
kill, pid), so the job, the registry's cap, the reaper and the suspend at exit do not know which runs a job.

An actor's death (killed, out of memory, its node lost) reads like a closed pipe: a tracked run is
"interrupted at step N", and Resume goes on from its last resume checkpoint in a new actor, on any node that is
left; the checkpoint travels as bytes, so that node needs no access to the server's disk. The actor is owned by
the server: Ray ends it when the server's process ends, like a worker process that finds its pipe closed.

The code reaches the nodes as a runtime_env `py_modules` entry (the mlp_core package alone, as for sweeps),
not `working_dir`: a node needs Ray and torch installed, not the checkout with its data, tests and docs.
This is the only module on the job path that imports Ray, and only once MLP_RAY_ADDRESS is set.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .worker import ERROR, INTERRUPTED, STOPPED, WorkerSpec
from .worker_link import WorkerLink

if TYPE_CHECKING:
    from .worker import Update

ADDRESS_ENV = "MLP_RAY_ADDRESS"
# The actor's methods at once: run (the training stream) and send (a command); one more for safety's sake.
ACTOR_CONCURRENCY = 3
WATCH_SLICE_S = 1.0  # how often a watcher looks whether the server has left Ray meanwhile


class RayClusterError(RuntimeError):
    """The Ray cluster MLP_RAY_ADDRESS names cannot be joined (a one-line message)."""


def cluster_address() -> str | None:
    """The Ray cluster a server's jobs run on (MLP_RAY_ADDRESS), or None: local worker processes."""
    return os.environ.get(ADDRESS_ENV, "").strip() or None


# ---------------------------------------------------------------------------- the server's connection
_connect_lock = threading.Lock()
_connected: str | None = None


def connect(address: str | None = None) -> str:
    """Join the cluster (once per process); RayClusterError, in one line and within seconds, when it cannot."""
    global _connected
    address = address or cluster_address()
    if not address:
        raise RayClusterError(f"{ADDRESS_ENV} is not set")
    with _connect_lock:
        if _connected == address and _ray() is not None:
            return address
        from .sweep import SweepError, _connect

        try:
            _connect(address, 0, what=ADDRESS_ENV)  # a TCP check first (seconds), then ray.init
        except SweepError as exc:
            why = str(exc)
            raise RayClusterError(why if why.startswith(ADDRESS_ENV) else f"{ADDRESS_ENV}: {why}") from None
        _connected = address
        # Registered after ray.init, so it runs before Ray's own shutdown at exit (atexit is last in, first out):
        # tracked actors still get their "suspend" (a final checkpoint) while the server can reach them.
        from .processes import _stop_live_jobs

        atexit.register(_stop_live_jobs)
        return address


def cluster_cpus() -> int:
    """The CPUs of the cluster this process has joined (one job per CPU: each actor asks for one)."""
    import ray

    return int(ray.cluster_resources().get("CPU", 0))


def _ray() -> Any:
    """The ray module while this process is connected, else None. Every call the server makes goes through this:
    most of Ray's API (ray.get, ray.wait, ray.kill) starts a local Ray instance when none is connected, which
    a reader or watcher thread outliving ray.shutdown() (the server on its way out) must never do."""
    import ray

    return ray if ray.is_initialized() else None


# ---------------------------------------------------------------------------- the actor (runs on a node)
_END = object()  # in the actor's update queue after the worker loop's last update


@dataclass(frozen=True)
class ActorInfo:
    """The first item of an actor's stream: where the job trains."""

    pid: int
    node_id: str


class _ActorConn:
    """The worker loop's end of the connection inside the actor: what a pipe's end does, over two queues."""

    def __init__(self, commands: queue.Queue, updates: queue.Queue) -> None:
        self._commands, self._updates = commands, updates

    def send(self, update: Update) -> None:
        self._updates.put(update)

    def recv(self) -> tuple:
        return self._commands.get()


class _JobActor:
    """One job's worker loop in a Ray actor: `run` streams its updates, `send` hands it commands."""

    def __init__(self) -> None:
        self._commands: queue.Queue = queue.Queue()
        self._updates: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._next = 0
        self._early: dict[int, tuple] = {}

    def send(self, seq: int, command: tuple) -> None:
        """Queue a command for the loop in the order the job sent them: a threaded actor may run two calls of
        one caller out of order (a pause overtaken by the resume after it would leave the job paused)."""
        with self._lock:
            self._early[seq] = command
            while self._next in self._early:
                self._commands.put(self._early.pop(self._next))
                self._next += 1

    def run(self, spec: bytes) -> Iterator[Any]:
        """The worker loop (on the pickled WorkerSpec) in a thread of this actor; yields where it runs, then each
        of its updates, pickled as a pipe would: Ray's zero-copy arrays would be read-only on the other side."""
        import ray

        from .worker import main

        yield ActorInfo(os.getpid(), ray.get_runtime_context().get_node_id())

        def loop() -> None:
            try:
                main(_ActorConn(self._commands, self._updates), pickle.loads(spec))
            finally:
                self._updates.put(_END)

        threading.Thread(target=loop, name="mlp-actor-worker", daemon=True).start()
        while (update := self._updates.get()) is not _END:
            yield pickle.dumps(update, protocol=pickle.HIGHEST_PROTOCOL)


_actor_class: Any = None


def _remote_actor() -> Any:
    global _actor_class
    if _actor_class is None:
        import ray

        # max_restarts=0: a dead actor's run is resumed from its checkpoint by the user, not replayed by Ray.
        _actor_class = ray.remote(num_cpus=1, max_concurrency=ACTOR_CONCURRENCY, max_restarts=0)(_JobActor)
    return _actor_class


# ---------------------------------------------------------------------------- the server's side of one actor
class ActorProcess:
    """What WorkerLink and TrainingJob use of a multiprocessing.Process, for an actor: is_alive, join, kill, pid.

    A watcher thread waits for the actor's stream to end (the loop's last update, or the actor's death), then
    ends the actor so that its CPU is free for the next job; "alive" is until then.
    """

    exitcode = None  # an actor has no exit status the server can see; `how` says how it ended

    def __init__(self, actor: Any, stream: Any) -> None:
        self.actor, self._stream = actor, stream
        self.pid: int | None = None  # the actor's process, once its first item arrived
        self.node_id: str | None = None
        self.how = ""  # why the stream broke off, "" when it ended with the loop
        self._ended = threading.Event()
        threading.Thread(target=self._watch, name="mlp-actor-watch", daemon=True).start()

    def _watch(self) -> None:
        try:
            while (ray := _ray()) is not None:
                # In slices: a ray.shutdown() meanwhile (the server exiting) must end this wait too.
                done, _ = ray.wait([self._stream.completed()], num_returns=1, timeout=WATCH_SLICE_S)
                if done:
                    break
        except Exception:  # Ray shut down under us: nothing is left to wait for
            pass
        finally:
            self.kill()
            self._ended.set()

    def is_alive(self) -> bool:
        return not self._ended.is_set()

    def join(self, timeout: float | None = None) -> None:
        self._ended.wait(timeout)

    def kill(self) -> None:
        ray = _ray()
        if ray is None:  # disconnected: the cluster ends the actors of a driver that has left
            return
        with contextlib.suppress(Exception):  # already dead
            ray.kill(self.actor, no_restart=True)

    terminate = kill

    def broke_off(self, exc: BaseException) -> None:
        """The stream raised: the actor died. Say whether its node is gone too."""
        ray = _ray()
        if self.how or ray is None:
            return
        lost = False
        with contextlib.suppress(Exception):
            lost = any(n["NodeID"] == self.node_id and not n["Alive"] for n in ray.nodes())
        self.how = "its node left the Ray cluster" if lost else f"its Ray actor died ({type(exc).__name__})"


class _ServerConn:
    """The job's end of the connection: recv() the next update of the actor's stream, send() a command."""

    def __init__(self, actor: Any, stream: Any, proc: ActorProcess) -> None:
        self._actor, self._stream, self._proc = actor, stream, proc
        self._seq = 0  # WorkerLink sends under its send_lock: one sender at a time

    def recv(self) -> Update:
        while True:
            ray = _ray()
            if ray is None:
                raise EOFError
            try:
                item = ray.get(next(self._stream))
            except StopIteration:
                raise EOFError from None
            except Exception as exc:  # RayActorError, ObjectLostError, ...: the actor (or its node) is gone
                self._proc.broke_off(exc)
                raise EOFError from None
            if isinstance(item, ActorInfo):
                self._proc.pid, self._proc.node_id = item.pid, item.node_id
                continue
            return pickle.loads(item)

    def send(self, command: tuple) -> None:
        if _ray() is None:
            raise EOFError
        try:
            self._actor.send.remote(self._seq, command)
        except Exception as exc:  # Ray is shut down (the server is exiting)
            raise EOFError from exc
        self._seq += 1

    def close(self) -> None:
        pass  # the actor ends with its stream (ActorProcess); nothing is held here


class RayLink(WorkerLink):
    """WorkerLink with an actor on the cluster instead of a local process; everything else is inherited."""

    def start_worker(self, spec: WorkerSpec) -> tuple[ActorProcess, _ServerConn]:
        connect()
        if isinstance(spec.resume_path, str):
            # The actor may run on another machine: it gets the checkpoint's bytes, not a path on this one.
            spec = replace(spec, resume_path=Path(spec.resume_path).read_bytes())
        actor = _remote_actor().remote()
        stream = actor.run.options(num_returns="streaming").remote(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
        proc = ActorProcess(actor, stream)
        return proc, _ServerConn(actor, stream, proc)

    def death(self, exitcode: int | None, step: int, checkpoint_step: int | None, tracked: bool) -> tuple[str, str]:
        at = f"{step:,}"
        if self.stopping:
            return STOPPED, f"stopped at step {at}"
        proc = self.proc
        how = (proc.how if isinstance(proc, ActorProcess) else "") or "its Ray actor ended without a last update"
        if tracked and checkpoint_step is not None:
            return INTERRUPTED, (
                f"interrupted at step {at}: {how}; Resume goes on from step {checkpoint_step:,}, its last checkpoint"
            )
        return ERROR, f"training stopped at step {at}: {how}; the last weights it sent are kept"


__all__ = ["ADDRESS_ENV", "ActorProcess", "RayClusterError", "RayLink", "cluster_address", "cluster_cpus", "connect"]


def main() -> int:
    """`python -m mlp_core.ray_link`: check MLP_RAY_ADDRESS before a server starts (run_dashboard.sh does)."""
    import sys

    try:
        address = connect()
    except RayClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import ray

    try:
        print(f"jobs will train on the Ray cluster at {address} ({cluster_cpus()} CPUs)")
    finally:
        ray.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
