"""The run store (mlp_core/store.py, recorder.py, resume.py): every run tracked in MLflow, exact resume, faults.

Each test has a store of its own (MLP_HOME in a temporary folder). The exact-resume tests SIGKILL a real
training process once it has written a resume checkpoint, resume it with `train --resume`, and compare with the
same run never interrupted: the same dev loss to 1e-6 (in fact bit for bit) at the lecture and fast presets.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_cli import run_main

from mlp_core import data, resume
from mlp_core.config import TrainConfig, field_names
from mlp_core.job import TrainingJob
from mlp_core.recorder import Tracking
from mlp_core.store import RunStore, StoreError, owner_tag, run_params

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("MLP_HOME", str(path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLP_CHECKPOINT_EVERY_S", "0.2")
    return path


@pytest.fixture
def words_file(tmp_path, tiny_words) -> Path:
    path = tmp_path / "words.txt"
    path.write_text("\n".join(tiny_words) + "\n")
    return path


def train_json(capsys, *args: str) -> dict:
    # Scaled init starts near ln V: a short run on 300 names ends better than guessing ("finished", not "diverged").
    init = [] if "--resume" in args or "--preset" in args else ["--init", "scaled"]
    code, out, err = run_main(["train", "--quiet", "--json", *init, *args], capsys)
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1])


def cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mlp_core", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


# ---------------------------------------------------------------------------- what a run records
def test_a_cli_run_is_tracked_with_every_setting_its_dataset_and_its_curves(home, words_file, capsys):
    summary = train_json(capsys, "--data", str(words_file), "--hidden", "16", "--steps", "400", "--eval-every", "100")
    run_id = summary["run_id"]
    assert run_id and (home / "mlflow.db").is_file()
    store = RunStore()
    record = store.record(run_id)
    for name in field_names():  # every TrainConfig field under its own name
        assert name in record.params, name
    assert record.params["hidden"] == "16" and record.params["steps"] == "400"
    words = data.load_words(words_file)
    assert record.params["dataset_size"] == str(len(words))
    assert record.params["dataset_sha256"] == data.words_sha256(words)
    assert record.params["dataset_source"] == f"file:{words_file.resolve()}"
    assert record.status == "finished" and record.step == 400
    assert record.tags["mlp.source"] == "cli" and record.tags["mlp.preset"] == "lecture"
    dev = store.metric_history(run_id, "dev_loss")
    assert [s for s, _ in dev] == [100, 200, 300, 400]
    assert dev[-1][1] == pytest.approx(summary["dev_loss"], abs=1e-9) or record.dev_loss == pytest.approx(
        summary["dev_loss"]
    )
    train = store.metric_history(run_id, "train_loss")
    assert 0 < len(train) <= 400  # the curve, not every step of a long run
    assert record.metrics["final_dev_loss"] == pytest.approx(summary["dev_loss"])
    assert "test_loss" not in record.metrics and "final_test_loss" not in record.metrics  # only when asked for
    assert store.resume_path(run_id).is_file()  # the resume checkpoint, as an artifact of the run
    # ... and its current and best-dev weights as plain checkpoints, as artifacts too.
    from mlp_core.checkpoint import load_checkpoint

    folder = store.local_artifacts(run_id) / "checkpoints"
    current, best = load_checkpoint(folder / "current.safetensors"), load_checkpoint(folder / "best.safetensors")
    assert current.meta["step"] == 400 and current.meta["run_id"] == run_id
    assert best.meta["step"] == summary["best_step"] and best.config.hidden == 16


def test_no_track_records_nothing(home, words_file, capsys):
    summary = train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "50", "--no-track")
    assert summary["run_id"] is None
    assert not (home / "mlflow.db").exists()


def test_train_loss_metric_stays_bounded_for_a_long_run(home, words_file, capsys):
    summary = train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "5000", "--eval-every", "1000")
    points = RunStore().metric_history(summary["run_id"], "train_loss")
    assert 900 <= len(points) <= 1000  # TRAIN_POINTS per run, each the mean of its window of steps


def test_runs_lists_every_run_as_json_and_deletes(home, words_file, capsys):
    ids = [
        train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "30", "--eval-every", "10")["run_id"]
        for _ in range(2)
    ]
    code, out, err = run_main(["runs", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out.strip().splitlines()[-1])
    assert {r["run_id"] for r in rows} == set(ids)
    for row in rows:
        assert {"run_id", "name", "status", "step", "dev_loss", "params"} <= set(row)
        assert row["status"] == "finished" and row["step"] == 30 and row["params"]["hidden"] == "8"
    code, _, err = run_main(["runs", "delete", ids[0]], capsys)
    assert code == 0, err
    code, out, _ = run_main(["runs", "--json"], capsys)
    assert [r["run_id"] for r in json.loads(out.strip().splitlines()[-1])] == [ids[1]]
    code, _, err = run_main(["runs", "delete", ids[0]], capsys)
    assert code == 2 and "deleted" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", ["../../etc/passwd", "x" * 32, "", "0" * 31, "/tmp/a"])
def test_a_run_id_never_reaches_a_path(home, capsys, bad):
    code, _, err = run_main(["train", "--resume", bad], capsys)
    assert code == 2 and err.startswith("error: no run with id") and len(err.strip().splitlines()) == 1
    assert not (home / "etc").exists()


# ---------------------------------------------------------------------------- exact resume
def _kill_when_checkpointed(cmd: list[str], env: dict, home: Path, steps: int) -> tuple[str, int]:
    """Start a training process, SIGKILL it once a resume checkpoint mid-run exists; (run id, its step)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be interrupted: make it longer"
            found = list((home / "artifacts").glob("*/artifacts/checkpoints/resume.safetensors"))
            if found:
                step = resume.load(found[0]).step
                if 0 < step < steps:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait(30)
                    return found[0].parts[-4], step
            time.sleep(0.02)
        raise AssertionError("no resume checkpoint within 240 s")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    ("preset", "extra"),
    [("lecture", ["--steps", "12000", "--eval-every", "3000"]), ("fast", ["--steps", "3000", "--eval-every", "500"])],
)
def test_a_killed_run_resumes_to_exactly_the_losses_of_an_uninterrupted_one(home, capsys, preset, extra):
    args = ["train", "--preset", preset, "--device", "cpu", *extra]
    reference = train_json(capsys, *args[1:], "--no-track")
    env = {**os.environ, "MLP_HOME": str(home), "MLP_CHECKPOINT_EVERY_S": "0.3"}
    steps = int(extra[1])
    run_id, killed_at = _kill_when_checkpointed([sys.executable, "-m", "mlp_core", *args, "--quiet"], env, home, steps)
    assert RunStore().record(run_id).status == "interrupted"  # its pid is gone: RUNNING alone proves nothing
    resumed = train_json(capsys, "--resume", run_id)
    assert resumed["run_id"] == run_id and resumed["resumed_from_step"] == killed_at
    assert resumed["steps"] == steps
    assert resumed["dev_loss"] == pytest.approx(reference["dev_loss"], abs=1e-6)
    assert resumed["train_loss"] == pytest.approx(reference["train_loss"], abs=1e-6)
    assert resumed["best_dev_loss"] == pytest.approx(reference["best_dev_loss"], abs=1e-6)
    record = RunStore().record(run_id)
    assert record.status == "finished" and record.step == steps
    dev_steps = [s for s, _ in RunStore().metric_history(run_id, "dev_loss")]
    assert dev_steps == sorted(set(dev_steps)) and dev_steps[-1] == steps  # no step twice, none missing at the end


def test_a_killed_dashboard_worker_resumes_exactly(home, tiny_dataset, tiny_words):
    config = TrainConfig(hidden=16, init="scaled", steps=30_000, eval_every=2000, batch_size=32, seed=3, device="cpu")
    reference = TrainingJob(config, tiny_dataset)
    reference.start()
    tracking = Tracking(
        RunStore().uri, None, "t", run_params(config, "tiny", "upload:tiny", tiny_words), {}, tuple(tiny_words)
    )
    job = TrainingJob(config, tiny_dataset, tracking=tracking)
    job.start()
    deadline = time.monotonic() + 240
    while (job.snapshot().checkpoint_step or 0) < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(job.pid, signal.SIGKILL)
    assert job.wait(30)
    snap = job.snapshot()
    assert snap.status == "interrupted" and "Resume goes on from step" in snap.message
    job.resume()
    at = job.snapshot().step
    assert 0 < at < config.steps
    assert job.wait(240) and reference.wait(240)
    done, ref = job.snapshot(), reference.snapshot()
    assert done.status == ref.status and done.step == config.steps
    assert [(e.step, e.dev_loss) for e in done.evals] == [(e.step, e.dev_loss) for e in ref.evals]
    assert done.final_losses["dev_loss"] == pytest.approx(ref.final_losses["dev_loss"], abs=1e-6)


# ---------------------------------------------------------------------------- faults
def test_a_corrupt_store_is_one_line_and_never_overwritten(home, words_file, capsys):
    home.mkdir(parents=True)
    db = home / "mlflow.db"
    db.write_bytes(b"this is not a database\n" * 10)
    before = db.read_bytes()
    for argv in (["runs"], ["train", "--data", str(words_file), "--steps", "5", "--quiet"]):
        code, _, err = run_main(argv, capsys)
        assert code == 2 and "run store" in err and "not an SQLite database" in err, err
        assert len(err.strip().splitlines()) == 1
    assert db.read_bytes() == before


def test_a_truncated_sqlite_store_is_one_line(home, words_file, capsys):
    train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "10", "--eval-every", "5")
    db = home / "mlflow.db"
    raw = db.read_bytes()
    db.write_bytes(raw[:4096])  # the header survives, the tables do not
    for f in home.glob("mlflow.db-*"):
        f.unlink()
    code, _, err = run_main(["runs"], capsys)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err


def test_a_damaged_checkpoint_is_named_and_the_other_runs_stay_listed(home, words_file, capsys):
    ids = [
        train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "20", "--eval-every", "10")["run_id"]
        for _ in range(2)
    ]
    path = RunStore().resume_path(ids[0])
    path.write_bytes(path.read_bytes()[:100])
    code, _, err = run_main(["train", "--resume", ids[0]], capsys)
    assert code == 2 and "resume checkpoint" in err and len(err.strip().splitlines()) == 1, err
    code, out, _ = run_main(["runs", "--json"], capsys)
    assert code == 0 and {r["run_id"] for r in json.loads(out.strip().splitlines()[-1])} == set(ids)


def test_a_changed_dataset_is_refused_on_resume(home, words_file, capsys):
    run_id = train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "20")["run_id"]
    with words_file.open("a") as f:
        f.write("zzyzx\n")
    code, _, err = run_main(["train", "--resume", run_id], capsys)
    assert code == 2 and "has changed since it was trained" in err


def test_an_unreachable_tracking_server_is_one_line_exit_2_within_seconds(home, words_file):
    t0 = time.monotonic()
    proc = cli("train", "--data", str(words_file), "--steps", "5", env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "127.0.0.1:9" in proc.stderr
    assert time.monotonic() - t0 < 60


def test_a_read_only_home_never_stops_a_dashboard_job(home, tiny_dataset, tiny_words):
    home.mkdir(parents=True)
    RunStore().runs()  # the store exists ...
    os.chmod(home, 0o500)  # ... and then its folder cannot be written (the database file too, below)
    os.chmod(home / "mlflow.db", 0o400)
    try:
        if os.access(home / "mlflow.db", os.W_OK):
            pytest.skip("running as a user that ignores file permissions")
        config = TrainConfig(hidden=8, init="scaled", steps=400, eval_every=100, device="cpu")
        tracking = Tracking(RunStore().uri, None, "t", run_params(config, "t", "upload:t", tiny_words), {}, None)
        job = TrainingJob(config, tiny_dataset, tracking=tracking)
        job.start()
        assert job.wait(120)
        snap = job.snapshot()
        assert snap.status == "finished" and snap.step == 400  # training was never blocked
        assert snap.store_error.startswith("runs are not being saved")
    finally:
        os.chmod(home, 0o700)
        os.chmod(home / "mlflow.db", 0o600)


def test_a_read_only_home_as_root_still_trains(home, tiny_dataset, tiny_words, monkeypatch):
    """Root ignores permissions: a home that is a file (cannot hold a database) is the same fault for everyone."""
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("not a folder")
    config = TrainConfig(hidden=8, init="scaled", steps=300, eval_every=100, device="cpu")
    tracking = Tracking(RunStore().uri, None, "t", run_params(config, "t", "upload:t", tiny_words), {}, None)
    job = TrainingJob(config, tiny_dataset, tracking=tracking)
    job.start()
    assert job.wait(120)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.step == 300
    assert snap.store_error.startswith("runs are not being saved")


def test_two_servers_on_one_home_write_at_once_without_corruption(home):
    """Two processes (two dashboard servers, or a server and a CLI run) create and log runs at the same time."""
    script = (
        "import sys\n"
        "from mlp_core.store import RunStore\n"
        "s = RunStore()\n"
        "for i in range(15):\n"
        "    r = s.create_run(f'{sys.argv[1]}-{i}', {'hidden': i}, {'mlp.owner': sys.argv[1]})\n"
        "    s.log(r, [('dev_loss', 2.0 + j / 100, j) for j in range(50)], {'mlp.status': 'finished'})\n"
    )
    env = {**os.environ, "MLP_HOME": str(home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, name], cwd=REPO, env=env, stderr=subprocess.PIPE)
        for name in ("a", "b")
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()[-2000:]
    store = RunStore()
    assert len(store.runs(owner="a")) == 15 and len(store.runs(owner="b")) == 15
    for record in store.runs():
        assert len(store.metric_history(record.run_id, "dev_loss")) == 50
    with sqlite3.connect(home / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_owner_is_stored_as_a_hash_and_runs_filter_by_it(home):
    store = RunStore()
    mine = store.create_run("mine", {}, {"mlp.owner": owner_tag("secret-1")})
    store.create_run("theirs", {}, {"mlp.owner": owner_tag("secret-2")})
    assert [r.run_id for r in store.runs(owner=owner_tag("secret-1"))] == [mine]
    assert "secret-1" not in store.record(mine).tags.values()
    try:  # a quote in a filter value is escaped (or refused), never injected
        injected = store.runs(owner="x' or '1'='1")
    except StoreError:
        injected = []
    assert injected == []


def test_a_record_whose_process_died_reads_interrupted(home):
    store = RunStore()
    run_id = store.create_run("r", {}, {})
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        from mlp_core.processes import process_start

        store.set_tags(
            run_id,
            {
                "mlp.status": "running",
                "mlp.pid": str(child.pid),
                "mlp.pid_start": str(process_start(child.pid)),
                "mlp.host": os.uname().nodename,
                "mlp.heartbeat": str(time.time()),
            },
        )
        assert store.record(run_id).status == "running"
    finally:
        child.kill()
        child.wait()
    assert store.record(run_id).status == "interrupted"


def test_the_recorder_never_blocks_training_on_a_locked_store(home, tiny_dataset, tiny_words):
    """An exclusive lock on the database while the job trains: it trains on; its records arrive after the lock."""
    RunStore().runs()
    db = sqlite3.connect(home / "mlflow.db", timeout=0, isolation_level=None)
    config = TrainConfig(hidden=8, steps=20_000, eval_every=500, device="cpu")
    tracking = Tracking(RunStore().uri, None, "t", run_params(config, "t", "upload:t", tiny_words), {}, None)
    job = TrainingJob(config, tiny_dataset, tracking=tracking)
    db.execute("BEGIN EXCLUSIVE")
    try:
        job.start()
        deadline = time.monotonic() + 120
        while job.snapshot().step < 5000 and time.monotonic() < deadline:
            time.sleep(0.05)
        snap = job.snapshot()
        assert snap.step >= 5000, "training waited for the store"
        assert snap.run_id is None  # the run could not even be created yet ...
    finally:
        db.execute("COMMIT")
        db.close()
    assert job.wait(180)
    snap = job.snapshot()
    assert snap.status == "finished" and snap.run_id is not None  # ... and was, with everything, once unlocked
    record = RunStore().record(snap.run_id)
    assert record.step == config.steps and math.isfinite(record.metrics["final_dev_loss"])
    assert [s for s, _ in RunStore().metric_history(snap.run_id, "dev_loss")] == list(range(500, 20_001, 500))


# ---------------------------------------------------------------------------- MLflow's own server
@pytest.fixture
def mlflow_server(tmp_path):
    """`mlflow server` on loopback over a fresh SQLite store (its own process group, ended after the test)."""
    from e2e.server import free_port

    port = free_port()
    db = tmp_path / "server" / "mlflow.db"
    db.parent.mkdir()
    cmd = [
        str(Path(sys.executable).with_name("mlflow")), "server",
        "--backend-store-uri", f"sqlite:///{db}", "--artifacts-destination", str(tmp_path / "server" / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = open(tmp_path / "mlflow-server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.read().strip() == b"OK":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
        yield url, db
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_runs_go_to_a_tracking_server_and_resume_through_its_artifacts(
    home, words_file, capsys, monkeypatch, mlflow_server
):
    """MLFLOW_TRACKING_URI wins over MLP_HOME: MLflow's own server (what `mlflow ui` is) shows our run, with our
    params, and `train --resume` finds the resume checkpoint through the server's artifact store."""
    url, _ = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    summary = train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "200", "--eval-every", "100")
    assert not (home / "mlflow.db").exists()  # nothing went to the local store
    request = urllib.request.Request(
        url + "/api/2.0/mlflow/runs/search",
        data=json.dumps({"experiment_ids": [RunStore().experiment_id]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        runs = json.loads(r.read())["runs"]
    (run,) = [r for r in runs if r["info"]["run_id"] == summary["run_id"]]
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["hidden"] == "8" and params["dataset_sha256"] == data.words_sha256(data.load_words(words_file))
    assert {m["key"] for m in run["data"]["metrics"]} >= {"train_loss", "dev_loss", "final_dev_loss"}
    # The local copy is a cache: without it the checkpoint comes back from the server's artifacts.
    RunStore().cache_path(summary["run_id"]).unlink()
    resumed = train_json(capsys, "--resume", summary["run_id"])
    assert resumed["resumed_from_step"] == 200 and resumed["dev_loss"] == pytest.approx(summary["dev_loss"])


def test_mlflow_server_on_the_default_store_shows_our_runs(home, words_file, capsys):
    """The README's `mlflow ui --backend-store-uri sqlite:///mlp_home/mlflow.db`: MLflow's own server reads it."""
    from e2e.server import free_port

    summary = train_json(capsys, "--data", str(words_file), "--hidden", "8", "--steps", "50", "--eval-every", "25")
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
           f"sqlite:///{home / 'mlflow.db'}", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=home, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        body = None
        while body is None:
            assert proc.poll() is None and time.monotonic() < deadline, "mlflow server did not start"
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search",
                    data=json.dumps({"experiment_ids": [RunStore().experiment_id]}).encode(),
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(request, timeout=5) as r:
                    body = json.loads(r.read())
            except OSError:
                time.sleep(0.3)
        assert [r["info"]["run_id"] for r in body["runs"]] == [summary["run_id"]]
        assert body["runs"][0]["info"]["status"] == "FINISHED"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
