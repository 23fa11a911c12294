"""Issue 11 (hardening) and the engine side of issue 9: one test per defect, each failing on the old code.

Training runs in worker processes here, so "is a worker still training" is asked of the OS (/proc), not of
the job object that might be wrong about it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import safetensors.torch
import torch
from test_cli import run_main

from mlp_core import cli
from mlp_core.checkpoint import CheckpointError, checkpoint_bytes, load_checkpoint
from mlp_core.config import TrainConfig
from mlp_core.job import TrainingJob
from mlp_core.model import build_model
from mlp_core.processes import process_alive
from mlp_core.registry import CapacityError, RunRegistry
from mlp_core.trainer import Trainer, estimate_step_seconds

LONG = 10_000_000
REPO = Path(__file__).resolve().parents[1]


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until predicate() holds; the timeout only guards against a hang (no timing is asserted)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


@pytest.fixture
def jobs():
    """Jobs made by a test; every one is stopped at the end, whatever happened."""
    made: list[TrainingJob] = []
    yield made
    for job in made:
        job.stop(timeout=0)


# ---------------------------------------------------------------------------- worker hooks (run in the worker)
def _stuck_step(trainer: Trainer) -> None:
    """Every chunk hangs for a minute: a step that never ends in any reasonable time."""

    def stuck(n: int):
        time.sleep(60)

    trainer.advance = stuck


def _dev_never_improves(trainer: Trainer) -> None:
    values = iter([3.0, 2.9, 2.95, 2.96, 2.97, 2.98, 2.99] + [3.5] * 1000)
    trainer.evaluate = lambda split, model=None: next(values) if split == "dev" else 3.0


# ---------------------------------------------------------------------------- 1. the cap and a prompt stop
def test_repeated_starts_never_exceed_the_cap(tiny_dataset, tiny_config):
    """Five Start clicks in a row with max_active_jobs=1: never more than one live worker, other sessions refused."""
    registry = RunRegistry(max_active_jobs=1)
    config = tiny_config.replace(hidden=512, batch_size=1024, steps=LONG, eval_every=1_000_000)
    run_id, other = registry.create(), registry.create()
    pids: list[int] = []
    most = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], sum(process_alive(p) for p in list(pids)))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        for _ in range(5):
            job = registry.start_new_job(run_id, config, tiny_dataset)
            pids.append(job.pid)
            most[0] = max(most[0], sum(process_alive(p) for p in pids))
            with pytest.raises(CapacityError):
                registry.start_new_job(other, config, tiny_dataset)
        wait_for(lambda: registry.get(run_id).job.snapshot().step > 0)
        assert sum(process_alive(p) for p in pids) == 1 and registry.active_jobs() == 1
    finally:
        done.set()
        watcher.join()
        registry.release_all()
    assert most[0] == 1
    assert not any(process_alive(p) for p in pids)


def test_stop_ends_a_job_even_in_the_middle_of_a_step(tiny_dataset, tiny_config, jobs):
    job = TrainingJob(tiny_config.replace(steps=LONG), tiny_dataset, worker_hook=_stuck_step)
    jobs.append(job)
    job.start()
    wait_for(lambda: job.live)
    pid = job.pid
    time.sleep(0.3)  # now inside the stuck step
    assert job.stop(timeout=1.0) is True
    assert not process_alive(pid) and not job.live
    assert job.snapshot().status == "stopped"


def test_registry_counts_a_live_worker_until_it_has_ended(tiny_dataset, tiny_config):
    registry = RunRegistry(max_active_jobs=1)
    run_id = registry.create()
    job = registry.start_new_job(run_id, tiny_config.replace(steps=LONG), tiny_dataset, start_step=0)
    try:
        wait_for(lambda: job.snapshot().step > 0)
        job.pause()
        wait_for(lambda: job.status == "paused")
        assert registry.active_jobs() == 1  # a paused worker still holds its slot
    finally:
        registry.release_all()
    assert registry.active_jobs() == 0 and not job.live


# ---------------------------------------------------------------------------- 2. reset never orphans a worker
def test_reset_never_leaves_a_worker_behind(tiny_dataset, tiny_config, jobs):
    job = TrainingJob(tiny_config.replace(steps=LONG), tiny_dataset, worker_hook=_stuck_step)
    jobs.append(job)
    job.start()
    wait_for(lambda: job.live)
    old = job.pid
    job.reset()
    assert not process_alive(old)
    snap = job.snapshot()
    assert (snap.status, snap.step) == ("idle", 0) and not job.live
    job.worker_hook = None
    job.step(5)
    wait_for(lambda: job.snapshot().status == "paused" and job.snapshot().step == 5)
    assert job.pid != old and process_alive(job.pid) and not process_alive(old)


# ---------------------------------------------------------------------------- a worker that dies
def test_a_killed_worker_is_an_error_with_a_message_not_a_dead_server(tiny_dataset, tiny_config, jobs):
    ended: list[str] = []
    job = TrainingJob(tiny_config.replace(steps=LONG), tiny_dataset, on_finish=lambda j: ended.append(j.status))
    jobs.append(job)
    job.start()
    wait_for(lambda: job.snapshot().step > 0)
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(30)
    snap = job.snapshot()
    assert snap.status == "error" and "killed by signal 9" in snap.message
    wait_for(lambda: ended == ["error"])
    model = job.current_model()  # the last weights it sent are still there
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_workers_do_not_outlive_their_server(tmp_path):
    """The server process is SIGKILLed (no atexit): its worker notices the closed pipe and exits."""
    script = tmp_path / "server.py"
    script.write_text(
        "import os, signal, time\n"
        "from mlp_core import data\n"
        "from mlp_core.config import TrainConfig\n"
        "from mlp_core.job import TrainingJob\n"
        "ds = data.make_dataset(data.builtin_words()[:300], 3, 42)\n"
        "job = TrainingJob(TrainConfig(hidden=16, steps=10_000_000, device='cpu'), ds)\n"
        "job.start()\n"
        "while job.snapshot().step == 0:\n"
        "    time.sleep(0.01)\n"
        "print(job.pid, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout.split()[0])
    wait_for(lambda: not process_alive(pid), timeout=30)


# ---------------------------------------------------------------------------- 3. checkpoint step == its weights
def _reference_weights(config: TrainConfig, dataset, step: int) -> dict[str, torch.Tensor]:
    t = Trainer(config, dataset)
    while t.step < step:
        t.advance(step - t.step)
    return t.model.state_dict()


@pytest.fixture
def words_file(tmp_path, tiny_words) -> Path:
    path = tmp_path / "words.txt"
    path.write_text("\n".join(tiny_words) + "\n")
    return path


def test_cli_divergence_saves_the_weights_it_kept_with_their_step(words_file, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "div.safetensors"
    args = ["--hidden", "16", "--init", "scaled", "--lr", "1", "--weight-decay", "10", "--steps", "500"]
    code, stdout, err = run_main(
        ["train", "--data", str(words_file), *args, "--eval-every", "100", "--out", str(out), "--json", "--quiet"],
        capsys,
    )
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    ckpt = load_checkpoint(out)
    step = ckpt.meta["step"]
    assert step == summary["weights_step"] < summary["diverged_at"]
    assert f"kept the weights of step {step:,}" in err
    reference = _reference_weights(ckpt.config, tiny_dataset, step)
    assert all(torch.equal(ckpt.model.state_dict()[k], v) for k, v in reference.items())


def test_cli_restore_best_saves_the_best_step(words_file, tiny_dataset, tmp_path, capsys):
    out = tmp_path / "best.safetensors"
    flags = ["--hidden", "16", "--init", "scaled", "--steps", "400", "--eval-every", "100", "--lr", "0.5"]
    code, stdout, err = run_main(
        ["train", "--data", str(words_file), *flags, "--restore-best", "--out", str(out), "--json", "--quiet"], capsys
    )
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    ckpt = load_checkpoint(out)
    assert ckpt.meta["step"] == summary["best_step"] == summary["weights_step"]
    assert f"kept the best-dev weights, of step {summary['best_step']:,}" in err
    reference = _reference_weights(ckpt.config, tiny_dataset, summary["best_step"])
    assert all(torch.equal(ckpt.model.state_dict()[k], v) for k, v in reference.items())


# ---------------------------------------------------------------------------- 4. crafted checkpoints
def _with_metadata(good: bytes, **changes: str) -> bytes:
    ckpt = load_checkpoint(good)
    header_len = struct.unpack("<Q", good[:8])[0]
    metadata = json.loads(good[8 : 8 + header_len])["__metadata__"]
    tensors = {k: v.contiguous() for k, v in ckpt.model.state_dict().items()}
    return safetensors.torch.save(tensors, metadata={**metadata, **changes})


@pytest.fixture
def good_checkpoint(tiny_dataset, tiny_config) -> bytes:
    return checkpoint_bytes(build_model(tiny_dataset.vocab.size, tiny_config), tiny_config, tiny_dataset.vocab)


@pytest.mark.parametrize("where", ["header", "config", "meta", "vocab"])
def test_deeply_nested_json_is_a_checkpoint_error_on_every_path(good_checkpoint, tmp_path, capsys, where):
    nested = "[" * 100_000 + "]" * 100_000
    if where == "header":
        raw = struct.pack("<Q", 100_000) + b"[" * 100_000
    else:
        raw = _with_metadata(good_checkpoint, **{where: nested})
    with pytest.raises(CheckpointError, match="nested too deeply"):
        load_checkpoint(raw)  # the Python API and the dashboard's upload (bytes)
    path = tmp_path / "nested.safetensors"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    code, out, err = run_main(["sample", "--checkpoint", str(path)], capsys)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "nested too deeply" in err


# ---------------------------------------------------------------------------- 5. train --out
def test_train_out_is_checked_before_any_training(words_file, tmp_path, capsys, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(cli, "Trainer", no_training)
    for bad in (tmp_path, tmp_path / "afile" / "m.safetensors"):
        (tmp_path / "afile").write_text("x")
        code, out, err = run_main(["train", "--data", str(words_file), "--out", str(bad)], capsys)
        assert code == 2 and out == "" and err.startswith("error: cannot write checkpoint"), err


def test_a_save_error_still_prints_the_summary(words_file, tmp_path, capsys, monkeypatch):
    def disk_full(path, *args, **kwargs):
        raise CheckpointError(f"cannot write checkpoint {path}: No space left on device")

    monkeypatch.setattr(cli, "save_checkpoint", disk_full)
    out = tmp_path / "m.safetensors"
    argv = [
        "train",
        "--data",
        str(words_file),
        "--hidden",
        "8",
        "--steps",
        "50",
        "--out",
        str(out),
        "--json",
        "--quiet",
    ]
    code, stdout, err = run_main(argv, capsys)
    assert code == 2 and "No space left on device" in err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["steps"] == 50 and "No space left" in summary["checkpoint_error"]


# ---------------------------------------------------------------------------- 6. torch threads stay in the worker
@pytest.mark.parametrize("torch_threads", [1, None])
def test_a_jobs_torch_threads_do_not_change_the_servers(tiny_dataset, tiny_config, jobs, torch_threads):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        job = TrainingJob(tiny_config.replace(steps=200), tiny_dataset, torch_threads=torch_threads)
        jobs.append(job)
        job.start()
        assert job.wait(60) and job.status == "finished"
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------- 7. the step decay rounds
@pytest.mark.parametrize(
    ("decay_at", "steps", "step"), [(0.57, 100, 57), (0.29, 200_000, 58_000), (0.5, 200_000, 100_000), (0.5, 101, 51)]
)
def test_lr_decay_step_rounds(decay_at, steps, step):
    config = TrainConfig(decay_at=decay_at, steps=steps)
    assert config.lr_decay_step == step
    trainer_lr = TrainConfig(decay_at=decay_at, steps=steps, lr=1.0, decay_factor=0.1)
    assert (trainer_lr.lr_decay_step - 1, trainer_lr.lr_decay_step) == (step - 1, step)


# ---------------------------------------------------------------------------- 8. best_model: eval mode, no RNG
def test_trainer_best_model_is_in_eval_mode_and_draws_no_random_numbers(tiny_dataset, tiny_config):
    t = Trainer(tiny_config.replace(dropout=0.5, steps=200, eval_every=100), tiny_dataset)
    while not t.finished:
        t.advance(200)
    rng = torch.get_rng_state()
    model = t.best_model()
    assert torch.equal(torch.get_rng_state(), rng)
    assert not model.training
    x, y = tiny_dataset.splits["dev"]
    with torch.no_grad():
        first, second = model.loss(x, y).item(), model.loss(x, y).item()
    assert first == second and math.isclose(first, t.best_dev, rel_tol=1e-4)


# ---------------------------------------------------------------------------- issue 9: progress, guard rails, best
def test_seconds_per_step_is_known_after_the_first_step(tiny_dataset, tiny_config, jobs):
    job = TrainingJob(tiny_config.replace(steps=LONG), tiny_dataset)
    jobs.append(job)
    assert math.isnan(job.snapshot().seconds_per_step)
    job.step(1)
    wait_for(lambda: job.snapshot().status == "paused" and job.snapshot().step == 1)
    assert job.snapshot().seconds_per_step > 0
    job.resume()
    wait_for(lambda: job.snapshot().step > 100)
    snap = job.snapshot()
    assert snap.status == "running" and 0 < snap.eta_seconds < math.inf


def test_estimate_step_seconds_is_cheap_and_positive(tiny_dataset, tiny_config):
    seconds = estimate_step_seconds(tiny_config.replace(steps=LONG), tiny_dataset)
    assert 0 < seconds < math.inf


def test_early_stopping_after_patience_evaluations(tiny_dataset, tiny_config):
    t = Trainer(tiny_config.replace(steps=LONG, eval_every=10, early_stop_patience=3), tiny_dataset)
    _dev_never_improves(t)
    while not t.finished:
        t.advance(LONG)
    # dev: 3.0 @10, 2.9 @20 (best), then 3 evaluations without a better one: @30, @40, @50
    assert t.step == 50 and t.best_step == 20
    assert t.stop_reason.startswith("early stop at step 50: no better dev loss in 3 evaluations")


def test_early_stopping_ends_a_job_as_finished(tiny_dataset, tiny_config, jobs):
    config = tiny_config.replace(steps=LONG, eval_every=10, early_stop_patience=3)
    job = TrainingJob(config, tiny_dataset, worker_hook=_dev_never_improves)
    jobs.append(job)
    job.start()
    assert job.wait(60)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.step == 50 and snap.message.startswith("early stop")
    assert job.best_weights().step == 20


@pytest.mark.parametrize("stop", [0, 1])
def test_worse_than_uniform_alerts_and_optionally_stops(tiny_dataset, tiny_config, stop):
    config = tiny_config.replace(lr=20.0, schedule="constant", steps=4000, eval_every=1000, stop_on_divergence=stop)
    t = Trainer(config, tiny_dataset)
    while not t.finished:
        t.advance(250)
    assert "above 3.30 (guessing uniformly among 27 characters)" in t.alert
    if stop:
        assert t.step == 3000 and t.stop_reason.startswith("stopped at step 3,000")
    else:
        assert t.step == 4000 and t.stop_reason is None


def test_the_lecture_defaults_keep_the_guard_rails_off():
    config = TrainConfig()
    assert (config.early_stop_patience, config.stop_on_divergence) == (0, 0)


def test_best_dev_weights_sample_download_and_continue(tiny_dataset, tiny_config):
    registry = RunRegistry(max_active_jobs=2)
    run_id = registry.create()
    config = tiny_config.replace(steps=LONG, eval_every=100, lr=0.5)
    run = registry.get(run_id)
    job = run.new_job(config, tiny_dataset)
    try:
        registry.step_job(run_id, 250)  # evaluations at 100 and 200, then paused at 250
        wait_for(lambda: job.snapshot().status == "paused" and job.snapshot().step == 250)
        snap = job.snapshot()
        best = job.best_weights()
        assert best is not None and best.step == snap.best_step and not best.model.training
        assert math.isclose(job.evaluate("dev", best.model), snap.best_dev, rel_tol=1e-5)
        reference = _reference_weights(config, tiny_dataset, best.step)
        assert all(torch.equal(best.model.state_dict()[k], v) for k, v in reference.items())
        # A checkpoint of them says their step (what a download button writes).
        raw = checkpoint_bytes(best.model, config, tiny_dataset.vocab, meta={"step": best.step})
        assert load_checkpoint(raw).meta["step"] == best.step
        # Continue from them: a new job whose step (so its lr schedule) starts at the best step.
        nxt = registry.continue_job(run_id, "best")
        assert nxt is registry.get(run_id).job and nxt is not job
        wait_for(lambda: len(nxt.snapshot().evals) > 0)  # its first evaluation (the first step now shows at once)
        nxt.stop()
        assert nxt.snapshot().evals[0].step == (best.step // 100 + 1) * 100
    finally:
        registry.release_all()


def test_continue_from_current_weights_keeps_their_step(tiny_dataset, tiny_config, jobs):
    job = TrainingJob(tiny_config.replace(steps=LONG), tiny_dataset)
    jobs.append(job)
    job.step(37)
    wait_for(lambda: job.snapshot().status == "paused")
    job.stop()
    nxt = job.continue_from("current")
    jobs.append(nxt)
    assert nxt.snapshot().step == 37 and nxt.status == "idle"
    same = functools.reduce(
        lambda ok, k: ok and torch.equal(nxt.current_model().state_dict()[k], job.current_model().state_dict()[k]),
        job.current_model().state_dict(),
        True,
    )
    assert same
