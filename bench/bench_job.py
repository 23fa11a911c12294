"""Where a training job runs: one worker process per job (TrainingJob) vs one Ray actor per job (a prototype).

Measured for each backend, in this order:
  start       Start -> the first step seen by the server (lecture config; each backend warmed up first)
  snapshot    reading the latest snapshot from the server (median of 200 reads while training)
  rss         resident memory of the job's process (and its PSS: forked pages shared with the fork server
              count once, split among their sharers) while training the lecture config
  pause/stop  request -> the job is paused / its process is gone (in brackets: when TrainingJob.stop()
              returned, i.e. the exit was reported and the memory freed), mid-training at a mid config (about
              0.5 s per step here) and mid-step at the heaviest config the memory check allows (one step
              of it takes minutes on a 2-core CPU)

The Ray backend is a minimal prototype kept in this file: an actor owning the same Trainer, training in a
thread, read with ray.get; stop is ray.kill. Ray runs on 127.0.0.1 inside its own network namespace (the
script re-runs itself under `unshare -n`) and is always ended with ray.shutdown().

    python bench/bench_job.py [--backends process ray] [--no-heavy]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import lecture_dataset, machine

from mlp_core.config import TrainConfig
from mlp_core.job import TrainingJob, warm_up
from mlp_core.model import check_memory
from mlp_core.processes import process_alive
from mlp_core.trainer import Trainer

LECTURE = TrainConfig(steps=10_000_000, device="cpu")
MID = TrainConfig(block_size=8, emb_dim=64, hidden=2048, batch_size=4096, steps=10_000_000, device="cpu")
HEAVY = TrainConfig(emb_dim=512, hidden=4096, batch_size=65536, steps=10_000_000, device="cpu")  # issue 9's example


def wait_until(predicate, timeout: float = 600.0, poll: float = 0.0005) -> float:
    t0 = time.perf_counter()
    while not predicate():
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("bench: condition not reached")
        time.sleep(poll)
    return time.perf_counter() - t0


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of a process in kB, from /proc."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


# ---------------------------------------------------------------------------- backend: worker process
class ProcessBackend:
    name = "process"

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        warm_up()

    def start(self, config: TrainConfig):
        job = TrainingJob(config, self.dataset)
        job.start()
        return job

    def step(self, job) -> int:
        return job.snapshot().step

    def snapshot(self, job):
        return job.snapshot()

    def pid(self, job) -> int:
        return job.pid

    def pause(self, job) -> float:
        t0 = time.perf_counter()
        job.pause()
        wait_until(lambda: job.snapshot().status == "paused")
        return time.perf_counter() - t0

    def stop(self, job) -> str:
        """ "<ms until the process is gone> (<ms until stop() returned>)": stop() also waits for the fork
        server to report the exit, which comes only once the kernel has freed the process's memory."""
        pid = job.pid
        t0 = time.perf_counter()
        returned: list[float] = []
        stopper = threading.Thread(target=lambda: (job.stop(), returned.append(time.perf_counter() - t0)))
        stopper.start()
        wait_until(lambda: not process_alive(pid))
        t_gone = time.perf_counter() - t0
        stopper.join()
        return f"{t_gone * 1000:.0f} ms ({returned[0] * 1000:.0f})"

    def close(self) -> None:
        pass


# ---------------------------------------------------------------------------- backend: Ray actor (prototype)
class RayBackend:
    name = "ray actor"

    def __init__(self, dataset) -> None:
        import ray

        self.ray = ray
        self.tmp = tempfile.mkdtemp(prefix="ray-bench-")
        ray.init(
            num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", _temp_dir=self.tmp, log_to_driver=False
        )
        self.dataset_ref = ray.put(dataset)

        @ray.remote(num_cpus=0)
        class JobActor:
            def __init__(self, config, dataset) -> None:
                import torch

                torch.set_num_threads(1)
                self.trainer = Trainer(config, dataset)
                self.paused = threading.Event()
                self.paused_ack = False
                self.step_ = 0
                self.view = self.trainer.train_history.view()  # published after each chunk, as the job does
                threading.Thread(target=self._loop, daemon=True).start()

            def _loop(self) -> None:
                chunk = 1
                while True:
                    if self.paused.is_set():
                        self.paused_ack = True  # seen between chunks, as the process backend's worker does
                        time.sleep(0.01)
                        continue
                    t0 = time.perf_counter()
                    result = self.trainer.advance(chunk)
                    per_step = (time.perf_counter() - t0) / max(1, result.steps_run)
                    chunk = max(1, int(0.1 / per_step))
                    self.step_, self.view = self.trainer.step, self.trainer.train_history.view()

            def snapshot(self) -> dict:
                return {"step": self.step_, "paused": self.paused_ack, "loss": self.view}

            def pause(self) -> None:
                self.paused.set()

            def pid(self) -> int:
                return os.getpid()

        self.actor_class = JobActor
        warm = JobActor.remote(LECTURE, self.dataset_ref)  # the first actor pays for worker start-up
        self.ray.get(warm.pid.remote())
        self.ray.kill(warm)

    def start(self, config: TrainConfig):
        return self.actor_class.remote(config, self.dataset_ref)

    def step(self, actor) -> int:
        return self.ray.get(actor.snapshot.remote())["step"]

    def snapshot(self, actor):
        return self.ray.get(actor.snapshot.remote())

    def pid(self, actor) -> int:
        return self.ray.get(actor.pid.remote())

    def pause(self, actor) -> float:
        t0 = time.perf_counter()
        actor.pause.remote()
        wait_until(lambda: self.snapshot(actor)["paused"])
        return time.perf_counter() - t0

    def stop(self, actor) -> str:
        pid = self.pid(actor)
        t0 = time.perf_counter()
        self.ray.kill(actor, no_restart=True)
        wait_until(lambda: not process_alive(pid))
        return f"{(time.perf_counter() - t0) * 1000:.0f} ms"

    def close(self) -> None:
        self.ray.shutdown()


# ---------------------------------------------------------------------------- the measurements
def measure(backend, heavy: bool) -> dict[str, str]:
    row: dict[str, str] = {"backend": backend.name}
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        job = backend.start(LECTURE)
        wait_until(lambda job=job: backend.step(job) > 0, poll=0.001)
        starts.append(time.perf_counter() - t0)
        backend.stop(job)
    row["start -> 1st step"] = f"{statistics.median(starts) * 1000:.0f} ms"
    job = backend.start(LECTURE)
    wait_until(lambda: backend.step(job) > 2000)
    reads = []
    for _ in range(200):
        t0 = time.perf_counter()
        backend.snapshot(job)
        reads.append(time.perf_counter() - t0)
    row["snapshot read"] = f"{statistics.median(reads) * 1e6:.1f} us"
    rss, pss = memory_kb(backend.pid(job))
    row["RSS / PSS per job"] = f"{rss / 1024:.0f} / {pss / 1024:.0f} MB"
    row["pause (lecture)"] = f"{backend.pause(job) * 1000:.0f} ms"
    row["stop (lecture)"] = backend.stop(job)
    job = backend.start(MID)
    wait_until(lambda: backend.step(job) >= 3, timeout=900)
    row["pause (mid)"] = f"{backend.pause(job) * 1000:.0f} ms"
    row["stop (mid)"] = backend.stop(job)
    if heavy:
        job = backend.start(HEAVY)
        pid = backend.pid(job)
        wait_until(lambda: memory_kb(pid)[0] > 2_000_000, timeout=300)  # its trainer is built and training
        time.sleep(1.0)  # inside its first step, which takes minutes here
        assert process_alive(pid)
        row["stop mid-step (heavy)"] = backend.stop(job)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", nargs="+", default=["process", "ray"], choices=["process", "ray"])
    p.add_argument("--no-heavy", action="store_true", help="skip the heaviest config (3.7 GB per job)")
    args = p.parse_args()
    if "ray" in args.backends and os.environ.get("MLP_BENCH_NETNS") != "1":
        # Ray binds sockets: give it a private loopback-only network, then run this script again inside it.
        inner = " ".join([sys.executable, *map(repr, sys.argv)])
        cmd = f"ip link set lo up && MLP_BENCH_NETNS=1 exec {inner}"
        sys.exit(subprocess.call(["unshare", "-n", "sh", "-c", cmd]))
    for config in (LECTURE, MID, HEAVY):
        check_memory(27, config)  # all within what the dashboard accepts
    print(machine())
    print(f"mid: {MID.block_size=} {MID.emb_dim=} {MID.hidden=} {MID.batch_size=}")
    print(f"heavy: {HEAVY.block_size=} {HEAVY.emb_dim=} {HEAVY.hidden=} {HEAVY.batch_size=}")
    dataset = lecture_dataset(3)
    rows = []
    for name in args.backends:
        backend = ProcessBackend(dataset) if name == "process" else RayBackend(dataset)
        try:
            rows.append(measure(backend, heavy=not args.no_heavy))
        finally:
            backend.close()
        print(rows[-1], flush=True)
    print()
    for key in rows[0]:
        print(f"{key:<24}" + "".join(f"{row.get(key, '-'):>22}" for row in rows))


if __name__ == "__main__":
    main()
