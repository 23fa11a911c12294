"""A dashboard job in a local worker process (the default) vs in a Ray actor (MLP_RAY_ADDRESS): start and stop.

Measured for each, the same TrainingJob code and lecture config, --repeats times after one warm-up job:
  start -> 1st step   job.start() until the server's snapshot shows a step (the worker or actor is built first)
  stop lands          job.stop() (mid-training) until the server's snapshot says "stopped": the worker's last
                      update has arrived, with its final weights and full-split losses (it evaluates them first)
  stop() returns      until job.stop() returns: the worker (process or actor) has also ended
  tracked: ...        the same for a run recorded in the run store (its last checkpoint and status written first)

The Ray side is a one-node `ray start --head` cluster this script starts (2 CPUs, loopback only, in a network
namespace of its own: it re-runs itself under `unshare -n`) and ends with its process group at the end.

    python bench/bench_ray_jobs.py [--repeats 5]
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
from collections.abc import Callable

from common import lecture_dataset, machine

from mlp_core import ray_link
from mlp_core.config import TrainConfig
from mlp_core.job import TrainingJob, warm_up
from mlp_core.recorder import Tracking
from mlp_core.store import RunStore
from tests.sweep_support import ray_cluster, ray_env  # the tests' local cluster: `ray start --block` nodes

LECTURE = TrainConfig(steps=10_000_000, device="cpu")
PORT = 46395


def wait_until(predicate: Callable[[], bool], timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("bench: condition not reached")
        time.sleep(0.001)


def one_job(dataset, tracking: Tracking | None) -> tuple[float, float, float]:
    """(start -> first step, stop -> the snapshot says stopped, stop -> stop() returned) in seconds, for one job."""
    job = TrainingJob(LECTURE, dataset, tracking=tracking)
    t0 = time.perf_counter()
    job.start()
    wait_until(lambda: job.snapshot().step > 0)
    start = time.perf_counter() - t0
    if tracking is not None:  # a tracked run is stopped once it has written a checkpoint, as a user would
        wait_until(lambda: job.snapshot().checkpoint_step is not None)
    else:
        wait_until(lambda: job.snapshot().step > 2000)
    returned: list[float] = []
    t0 = time.perf_counter()
    stopper = threading.Thread(target=lambda: (job.stop(), returned.append(time.perf_counter() - t0)))
    stopper.start()
    wait_until(lambda: job.snapshot().status == "stopped")
    lands = time.perf_counter() - t0
    stopper.join()
    return start, lands, returned[0]


def measure(name: str, dataset, repeats: int, store_uri: str) -> dict[str, str]:
    one_job(dataset, None)  # warm-up: the fork server, or the node's runtime env and first actor
    untracked = [one_job(dataset, None) for _ in range(repeats)]
    tracking = Tracking(store_uri, name=f"bench {name}", checkpoint_every_s=1.0)
    tracked = [one_job(dataset, tracking) for _ in range(max(1, repeats // 2))]

    def fmt(values: list[float]) -> str:
        ms = [v * 1000 for v in values]
        return f"{statistics.median(ms):,.0f} ms (min {min(ms):,.0f}, max {max(ms):,.0f})"

    return {
        "backend": name,
        "start -> 1st step": fmt([r[0] for r in untracked]),
        "stop lands": fmt([r[1] for r in untracked]),
        "stop() returns": fmt([r[2] for r in untracked]),
        "tracked: stop lands": fmt([r[1] for r in tracked]),
        "tracked: stop() returns": fmt([r[2] for r in tracked]),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if os.environ.get("MLP_BENCH_NETNS") != "1":
        # Ray binds sockets: give it a private loopback-only network, then run this script again inside it.
        inner = " ".join([sys.executable, *map(repr, sys.argv)])
        sys.exit(subprocess.call(["unshare", "-n", "sh", "-c", f"ip link set lo up && MLP_BENCH_NETNS=1 exec {inner}"]))
    print(machine())
    dataset = lecture_dataset(3)
    store_uri = f"sqlite:///{tempfile.mkdtemp(prefix='bench-ray-jobs-')}/mlflow.db"
    RunStore(store_uri)
    os.environ.pop(ray_link.ADDRESS_ENV, None)
    warm_up()
    rows = [measure("process", dataset, args.repeats, store_uri)]
    import multiprocessing.forkserver

    multiprocessing.forkserver.ensure_running()  # started before this process takes the cluster's HOME (below)
    with ray_env() as env, ray_cluster(env, PORT, cpus=(2,)) as cluster:
        import ray

        os.environ.update(HOME=env["HOME"], RAY_TMPDIR=env["RAY_TMPDIR"])  # the driver reads Ray's token in HOME
        os.environ[ray_link.ADDRESS_ENV] = cluster.address
        try:
            t0 = time.perf_counter()
            ray_link.connect()
            print(f"connect to the cluster (once per server, at start-up): {time.perf_counter() - t0:.1f} s")
            rows.append(measure("ray actor", dataset, args.repeats, store_uri))
        finally:
            ray.shutdown()
    keys = list(rows[0])
    widths = [max(len(k), *(len(r[k]) for r in rows)) for k in keys]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for r in rows:
        print("  ".join(r[k].ljust(w) for k, w in zip(keys, widths, strict=True)))


if __name__ == "__main__":
    main()
