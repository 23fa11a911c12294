"""Dashboard training jobs as Ray actors (MLP_RAY_ADDRESS, mlp_core/ray_link.py) on a real local cluster.

The cluster is two `ray start --block` nodes on loopback, a head and a worker of one CPU each, inside the isolated
network namespace run_tests.sh provides (tests/sweep_support.py); anywhere
else these tests skip and say why. The module's cluster has its own HOME and Ray temp dir, and everything it
started is ended at the end: ray.shutdown(), each node's process group, then any process still carrying its HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest

from mlp_core import ray_link
from mlp_core.config import TrainConfig
from mlp_core.job import TrainingJob, warm_up
from mlp_core.processes import process_alive
from mlp_core.ray_link import RayClusterError, RayLink
from mlp_core.recorder import Tracking
from mlp_core.registry import RunRegistry
from mlp_core.store import RunStore, run_params
from mlp_core.trainer import Trainer
from tests.sweep_support import REPO, RayCluster, descendants, ray_cluster, ray_env, require_isolated_network

PORT = 46390
LONG = 10_000_000  # steps: a job that only ends when told to


def wait_for(predicate: Callable[[], object], timeout: float = 120.0, what: str = "the condition") -> None:
    """Poll until predicate() holds; the timeout only guards against a hang (an actor starts in seconds here)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n["Alive"]]


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    require_isolated_network()
    import multiprocessing.forkserver

    # The fork server of local workers starts now, before this process takes the cluster's HOME: ray_env's
    # clean-up kills whatever carries that HOME, and the fork server must outlive this module.
    warm_up()
    multiprocessing.forkserver.ensure_running()
    with ray_env() as env, pytest.MonkeyPatch.context() as mp:
        # A node that stops answering is declared dead after ~1.5 s instead of Ray's default ~30 s.
        env.update(
            RAY_health_check_period_ms="500", RAY_health_check_timeout_ms="500", RAY_health_check_failure_threshold="3"
        )
        mp.setenv("HOME", env["HOME"])  # this process is the cluster's driver: Ray reads its auth token in HOME
        mp.setenv("RAY_TMPDIR", env["RAY_TMPDIR"])
        mp.delenv("RAY_ADDRESS", raising=False)
        mp.delenv("MLP_MAX_JOBS", raising=False)
        mp.setenv(ray_link.ADDRESS_ENV, f"127.0.0.1:{PORT}")
        with ray_cluster(env, PORT, cpus=(1, 1)) as nodes:
            import ray

            try:
                ray_link.connect()
                wait_for(lambda: len(alive_nodes()) == 2, what="two live nodes", timeout=300)
                yield nodes
            finally:
                ray.shutdown()
                ray_link._connected = None


@pytest.fixture
def no_training_here(monkeypatch) -> list[int]:
    """Every Trainer.advance this (the server's) process runs: none may, a job's steps belong to its actor."""
    calls: list[int] = []
    real = Trainer.advance

    def advance(self, n: int, *args, **kwargs):
        calls.append(n)
        return real(self, n, *args, **kwargs)

    monkeypatch.setattr(Trainer, "advance", advance)
    return calls


@pytest.fixture
def jobs() -> Iterator[Callable[..., TrainingJob]]:
    """Build jobs, and stop every one at the end of the test, whatever happened (before the cluster ends)."""
    made: list[TrainingJob] = []

    def make(*args, **kwargs) -> TrainingJob:
        made.append(TrainingJob(*args, **kwargs))
        return made[-1]

    yield make
    for job in made:
        assert job.stop(timeout=10)


def config(**overrides) -> TrainConfig:
    base = TrainConfig(hidden=16, init="scaled", steps=LONG, eval_every=100, batch_size=32, seed=1, device="cpu")
    return base.replace(**overrides)


# ---------------------------------------------------------------------------- on the cluster
def test_the_job_cap_is_the_clusters_cpus_unless_mlp_max_jobs_says(cluster, monkeypatch):
    assert RunRegistry().max_active_jobs == 2  # two nodes of one CPU
    monkeypatch.setenv("MLP_MAX_JOBS", "5")
    assert RunRegistry().max_active_jobs == 5


def test_a_job_trains_in_an_actor_on_a_node_and_obeys_every_command(cluster, tiny_dataset, jobs, no_training_here):
    job = jobs(config(), tiny_dataset)
    assert isinstance(job._link, RayLink)
    job.start()
    wait_for(lambda: job.snapshot().step > 0 and job.pid is not None, what="the first step")
    pid, node = job.pid, job._proc.node_id
    assert pid != os.getpid() and any(pid in descendants(n.pid) for n in cluster.nodes), "not on a node"
    assert node in {n["NodeID"] for n in alive_nodes()}
    assert job.live and job.status == "running"

    first = job.snapshot()
    # Snapshots go on arriving: steps, the loss curve, evaluations, the weights.
    wait_for(lambda: job.snapshot().step > first.step + 200 and len(job.snapshot().evals) > len(first.evals))
    snap = job.snapshot()
    assert snap.version > first.version and snap.train_history.count.sum() > first.train_history.count.sum()
    assert snap.weights_step > first.weights_step

    job.pause()
    wait_for(lambda: job.status == "paused", what="the pause")
    at = job.snapshot().step
    job.step(50)
    wait_for(lambda: job.status == "paused" and job.snapshot().step == at + 50, what="exactly 50 more steps")
    job.resume()
    wait_for(lambda: job.status == "running" and job.snapshot().step > at + 50, what="the resume")

    assert job.stop()
    snap = job.snapshot()
    assert snap.status == "stopped" and snap.message.startswith("stopped at step") and not job.live
    assert snap.final_losses is not None  # the actor's last words: the full-split losses of its final weights
    wait_for(lambda: not process_alive(pid), what="the actor's process to end")  # its CPU is free for the next job
    assert no_training_here == [], "the server process ran training steps"


def test_a_lost_node_interrupts_the_run_and_resume_goes_on_from_its_checkpoint_on_another(
    cluster, tiny_dataset, tiny_words, tmp_path, jobs, no_training_here
):
    cfg = config(eval_every=200)
    store = RunStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    params = run_params(cfg, "tiny", "upload:tiny", tiny_words)
    tracking = Tracking(store.uri, None, "t", params, {}, tuple(tiny_words), checkpoint_every_s=0.2)
    job = jobs(cfg, tiny_dataset, tracking=tracking)
    other = jobs(cfg, tiny_dataset, tracking=tracking)  # the cluster's other CPU: one job runs on the worker node
    job.start()
    other.start()
    wait_for(lambda: job.pid is not None and other.pid is not None, what="both actors")
    head, worker = cluster.nodes
    if other.pid in descendants(worker.pid):  # the run to interrupt must be the one on the node that can be lost
        job, other = other, job
    assert job.pid in descendants(worker.pid) and other.pid in descendants(head.pid)
    wait_for(lambda: (job.snapshot().checkpoint_step or 0) > 0, what="a resume checkpoint")
    lost_node, lost_pid = job._proc.node_id, job.pid
    cluster.kill_node(worker)  # SIGKILL to its raylet, its actor and every other process of that node
    wait_for(lambda: not process_alive(lost_pid), what="the lost node's actor to be gone")

    assert job.wait(120)
    snap = job.snapshot()
    checkpoint, run_id = snap.checkpoint_step, snap.run_id
    assert snap.status == "interrupted" and snap.resumable, snap.message
    assert snap.message.startswith(f"interrupted at step {snap.step:,}")
    assert f"Resume goes on from step {checkpoint:,}" in snap.message
    assert run_id is not None and store.record(run_id).status in ("running", "interrupted")

    other.stop()  # its CPU, the only one left, is for the resumed run
    job.resume()
    # From the store's last checkpoint: the one the server heard of, or one the actor wrote after its last update.
    resumed_at = job.snapshot().step
    assert checkpoint <= resumed_at == RunStore(store.uri).load_resume(run_id).step
    # Past the next evaluation and into a checkpoint of its own: the stored run goes on from the checkpoint.
    wait_for(lambda: (job.snapshot().checkpoint_step or 0) > resumed_at + 400, what="the resumed run's checkpoint")
    assert job._proc.node_id != lost_node and job.pid in descendants(head.pid)
    assert job.snapshot().run_id == run_id  # the same stored run goes on
    before = job.snapshot()
    t0 = time.monotonic()
    assert job.stop()
    took = time.monotonic() - t0
    assert job.snapshot().status == "stopped"
    rec = store.record(run_id)
    assert rec.status == "stopped", (took, job.snapshot().final_losses, before.step, before.checkpoint_step, rec)
    steps = [s for s, _ in store.metric_history(run_id, "dev_loss")]
    # The stored dev curve has every evaluation up to the checkpoint, then goes on past it. (Evaluations logged
    # between the checkpoint and the node's loss are logged again by the resumed run, as for a killed process.)
    assert set(range(200, resumed_at + 1, 200)) <= set(steps) and steps[-1] > resumed_at
    assert no_training_here == []


# ---------------------------------------------------------------------------- no cluster needed
def test_an_unreachable_address_is_one_line_at_start_up_not_a_hang(monkeypatch):
    monkeypatch.setenv(ray_link.ADDRESS_ENV, "127.0.0.1:9")  # nothing listens on the discard port
    t0 = time.monotonic()
    with pytest.raises(RayClusterError) as err:
        RunRegistry()
    message = str(err.value)
    assert message.startswith("MLP_RAY_ADDRESS: cannot reach a Ray cluster at 127.0.0.1:9") and "\n" not in message
    assert time.monotonic() - t0 < 60, "a hang guard, not a timing test (the refusal comes in milliseconds)"
    monkeypatch.setenv(ray_link.ADDRESS_ENV, "no-port-here")
    with pytest.raises(RayClusterError, match="MLP_RAY_ADDRESS must look like HOST:PORT"):
        RunRegistry()


def test_without_the_variable_jobs_are_local_processes_and_ray_is_never_imported():
    code = """
import sys
from mlp_core import data
from mlp_core.config import TrainConfig
from mlp_core.job import TrainingJob
from mlp_core.registry import RunRegistry
from mlp_core.worker_link import WorkerLink
reg = RunRegistry()
job = TrainingJob(TrainConfig(hidden=8, steps=20, device="cpu"), data.make_dataset(data.builtin_words()[:200], 3))
job.start()
assert job.wait(60) and job.snapshot().step == 20 and job.snapshot().final, job.snapshot().message
assert type(job._link) is WorkerLink and reg.max_active_jobs == 4
assert "ray" not in sys.modules, "a server without MLP_RAY_ADDRESS imported Ray"
print("ok")
"""
    env = {k: v for k, v in os.environ.items() if k not in (ray_link.ADDRESS_ENV, "MLP_MAX_JOBS")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]
