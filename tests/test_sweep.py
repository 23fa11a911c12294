"""mlp_core.sweep and `python -m mlp_core sweep`: the search space, every bad input, and real Ray sweeps.

The Ray tests run real Ray (no mocks) on tiny data, inside the isolated network namespace run_tests.sh
provides (see tests/sweep_support.py); each has its own HOME and Ray temp dir and ends every Ray
process it started.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlp_core import data, sweep
from mlp_core.checkpoint import load_checkpoint
from mlp_core.config import PRESETS
from mlp_core.store import RunStore
from tests.sweep_support import (
    REPO,
    cmdline,
    descendants,
    is_loopback,
    listening_addresses,
    marked_pids,
    ray_cluster,
    ray_env,
    require_isolated_network,
    start_sweep,
    sweep_cmd,
)
from tests.test_cli import run_main

RESULT_KEYS = {
    "trials", "completed", "stopped_early", "errored", "best_dev_loss", "best_config", "best_steps",
    "best_checkpoint", "seconds", "nodes_used", "cluster", "out",
}  # fmt: skip


@pytest.fixture(scope="module")
def words_file(tmp_path_factory) -> Path:
    """600 built-in names: a 300-step trial of the fast preset takes well under a second."""
    path = tmp_path_factory.mktemp("sweepdata") / "names.txt"
    data.write_words(data.builtin_words()[:600], path)
    return path


@pytest.fixture
def no_ray(monkeypatch):
    """For the bad-input tests: starting Ray at all is the failure (and must never happen outside the netns)."""

    def refuse(*args, **kwargs):
        raise AssertionError("a bad input reached Ray")

    monkeypatch.setattr(sweep, "_connect", refuse)


# ---------------------------------------------------------------------------- the space
def test_parse_param_kinds():
    assert sweep.parse_param("lr=1e-3:1e-1:log") == sweep.Param("lr", 1e-3, 1e-1, log=True)
    assert sweep.parse_param("hidden=64:256") == sweep.Param("hidden", 64, 256)
    assert sweep.parse_param("optimizer=sgd|adamw").values == ("sgd", "adamw")
    assert sweep.parse_param("block-size=3|4|8").values == (3, 4, 8)
    assert sweep.parse_param("dropout=0.1").values == (0.1,)  # one value: fixed
    assert sweep.parse_param("lr=1e-3:1e-1:log").spec() == "lr=0.001:0.1:log"


def test_tune_space_draws_valid_configs():
    params = [sweep.parse_param(s) for s in ("lr=1e-3:1e-1:log", "hidden=8:9", "init=lecture|scaled")]
    space = sweep.tune_space(params)
    base = PRESETS["fast"]
    for _ in range(50):
        drawn = {k: v.sample() for k, v in space.items()}
        assert isinstance(drawn["hidden"], int) and drawn["hidden"] in (8, 9)  # HI is inclusive
        assert 1e-3 <= drawn["lr"] <= 1e-1
        base.replace(**drawn)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope=1:2", "unknown field 'nope'"),
        ("hidden=256:64", "LO 256 is greater than HI 64"),
        ("hidden=1:99999", "hidden must be between 1 and 4,096"),
        ("lr=0:1:log", "log range needs LO > 0"),
        ("optimizer=sgd|rmsprop", "optimizer must be one of sgd, adamw"),
        ("init=1:2", "takes choices like init=lecture|scaled"),
        ("dropout=0.1:x", "'x' is not a number"),
        ("lr=1:2:cubic", "LO:HI or LO:HI:log"),
        ("device=cpu|cuda", "device cannot be swept"),
        ("hidden", "must look like FIELD=LO:HI"),
    ],
)
def test_bad_param_is_one_line_exit_2_and_starts_nothing(spec, message, words_file, tmp_path, capsys, no_ray):
    out = tmp_path / "sweep"
    code, stdout, err = run_main(
        ["sweep", "--data", str(words_file), "--trials", "2", "--steps", "10", "--param", spec, "--out", str(out)],
        capsys,
    )
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and stdout == ""
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "--trials must be between 1"),
        (["--steps", "0"], "--steps must be between 1"),
        (["--concurrency", "0"], "--concurrency must be at least 1"),
        (["--cpus-per-trial", "0"], "--cpus-per-trial must be a number above 0"),
        (["--param", "hidden=8:16", "--param", "hidden=32"], "hidden is given twice"),
        (
            [
                "--param",
                "hidden=64:4096",
                "--param",
                "batch_size=65536",
                "--param",
                "emb_dim=512",
                "--param",
                "block_size=32",
            ],
            "GB of memory",
        ),
        (["--address", "127.0.0.1:9"], "cannot reach a Ray cluster at 127.0.0.1:9"),
        (["--address", "not an address"], "--address must look like HOST:PORT"),
    ],
)
def test_bad_settings_are_one_line_exit_2_and_start_nothing(args, message, words_file, tmp_path, capsys, no_ray):
    out = tmp_path / "sweep"
    t0 = time.monotonic()
    code, _, err = run_main(["sweep", "--data", str(words_file), "--steps", "10", *args, "--out", str(out)], capsys)
    assert code == 2 and message in err, err
    assert err.count("\n") == 1 and not out.exists()
    assert time.monotonic() - t0 < 30  # an unreachable address gives up quickly


def test_unreadable_data_and_bad_resume_dir(tmp_path, capsys, no_ray):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00bad")
    for argv, message in [
        (["--data", str(tmp_path / "missing.txt")], "missing.txt"),
        (["--data", str(bad)], "bad.txt"),
        (["--resume", str(tmp_path)], "is not a sweep directory"),
    ]:
        code, _, err = run_main(["sweep", "--trials", "2", *argv, "--out", str(tmp_path / "o")], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert not (tmp_path / "o").exists()


def test_existing_sweep_dir_is_not_overwritten(words_file, tmp_path, capsys, no_ray):
    out = tmp_path / "sweep"
    out.mkdir()
    (out / sweep.SETTINGS_FILE).write_text("{}")
    code, _, err = run_main(["sweep", "--data", str(words_file), "--steps", "10", "--out", str(out)], capsys)
    assert code == 2 and f"--resume {out}" in err
    assert (out / sweep.SETTINGS_FILE).read_text() == "{}"


# ---------------------------------------------------------------------------- real Ray
def _summary(out: Path) -> dict:
    return sweep.read_summary(out) or {"trials": {}}


def _finish(proc: subprocess.Popen, timeout: float = 120) -> dict:
    stdout, stderr = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert set(result) == RESULT_KEYS
    return result


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 90, every: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the sweep ended first: {proc.communicate()[1][-3000:]}")
        time.sleep(every)
    raise AssertionError("timed out waiting for the sweep")


def test_local_sweep_exact_counts_loopback_only_and_nan_trials(words_file, tmp_path):
    require_isolated_network()
    out = tmp_path / "sweep"
    with ray_env() as env:
        env["MLP_HOME"] = str(tmp_path / "home")  # a run store of this test's own
        # sgd with lr * weight_decay = 10 blows up to NaN; weight_decay 0 trains. Seed 0 draws both.
        proc = start_sweep(
            env, "--data", str(words_file), "--trials", "4", "--steps", "300", "--scheduler", "fifo",
            "--param", "optimizer=sgd", "--param", "lr=1", "--param", "weight_decay=0|10",
            "--param", "schedule=constant",
            "--out", str(out), "--json", "--seed", "0",
        )  # fmt: skip
        seen: set[str] = set()
        while proc.poll() is None:
            seen |= listening_addresses()
            time.sleep(0.2)
        result = _finish(proc)
    assert seen, "Ray listened on nothing? the check would be vacuous"
    assert all(is_loopback(a) for a in seen), f"listening beyond loopback: {seen}"
    trials = _summary(out)["trials"].values()
    diverged = [t for t in trials if t["config"]["weight_decay"] == 10]
    assert diverged and len(diverged) < 4, "seed 0 should draw both weight decays"
    assert result["trials"] == 4 and result["errored"] == 0
    assert result["completed"] == 4 - len(diverged) and result["stopped_early"] == len(diverged)
    for t in diverged:
        assert t["status"] == "stopped" and t["reason"].startswith("diverged at step"), t
    for t in trials:
        if t not in diverged:
            assert t["status"] == "completed" and t["steps"] == 300 and [p[0] for p in t["curve"]] == [100, 200, 300]
    assert result["best_dev_loss"] == min(t["dev_loss"] for t in trials if t["status"] == "completed")
    assert result["nodes_used"] == 1 and result["cluster"]["nodes"] == 1
    assert result["best_config"]["weight_decay"] == 0 and result["best_steps"] == 300
    ckpt = load_checkpoint(result["best_checkpoint"])
    assert ckpt.meta["dev_loss"] == pytest.approx(result["best_dev_loss"])
    sample = subprocess.run(
        [sys.executable, "-m", "mlp_core", "sample", "--checkpoint", result["best_checkpoint"], "--n", "3", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert sample.returncode == 0 and len(json.loads(sample.stdout.splitlines()[-1])["samples"]) == 3
    # Every trial is a child run of the sweep's run in the run store, recorded like any other run.
    store = RunStore(f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}")
    parent = _summary(out)["store_run_id"]
    children = [r for r in store.runs() if r.tags.get("mlflow.parentRunId") == parent]
    assert len(children) == 4
    for child in children:
        assert child.params["optimizer"] == "sgd" and child.params["weight_decay"] in ("0", "10", "0.0", "10.0")
        expected = "diverged" if float(child.params["weight_decay"]) == 10 else "finished"
        assert child.status == expected, (child.status, child.params["weight_decay"])
        if expected == "finished":
            assert [s for s, _ in store.metric_history(child.run_id, "dev_loss")] == [100, 200, 300]


def test_asha_stops_poor_trials(words_file, tmp_path):
    require_isolated_network()
    out = tmp_path / "sweep"
    with ray_env() as env:
        # lr 1e-5 barely moves: ASHA's first rung (step 100) compares it with lr 0.02 trials and stops it.
        proc = start_sweep(
            env, "--data", str(words_file), "--trials", "6", "--steps", "400", "--concurrency", "2",
            "--param", "lr=0.00001|0.02", "--out", str(out), "--json", "--quiet", "--seed", "1",
        )  # fmt: skip
        result = _finish(proc)
    stopped = [t for t in _summary(out)["trials"].values() if t["status"] == "stopped"]
    assert result["stopped_early"] >= 1 and len(stopped) == result["stopped_early"]
    assert all(t["steps"] < 400 and "stopped early by the scheduler" in t["reason"] for t in stopped)
    assert result["completed"] + result["stopped_early"] == 6


def test_two_node_ray_start_cluster_uses_both_nodes(words_file, tmp_path):
    require_isolated_network()
    port = 46379
    out = tmp_path / "sweep"
    # 2,000-step trials (~2 s): long enough that the second trial starts before the first ends.
    with ray_env() as env, ray_cluster(env, port, cpus=(1, 1)):
        result = subprocess.run(
            sweep_cmd(
                "--data", str(words_file), "--trials", "4", "--steps", "2000", "--scheduler", "fifo",
                "--concurrency", "2", "--param", "hidden=16:64", "--address", f"127.0.0.1:{port}",
                "--out", str(out), "--json", "--quiet",
            ),
            cwd=REPO, env=env, capture_output=True, text=True, timeout=150,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["cluster"]["nodes"] == 2 and summary["cluster"]["cpus"] == 2
    assert summary["nodes_used"] == 2 and summary["completed"] == 4
    assert summary["cluster"]["address"] == f"127.0.0.1:{port}"
    assert load_checkpoint(summary["best_checkpoint"]).meta["step"] == 2000  # bytes reached the driver's --out


def test_killed_trial_worker_is_retried_and_the_sweep_completes(words_file, tmp_path):
    require_isolated_network()
    out = tmp_path / "sweep"
    with ray_env() as env:
        proc = start_sweep(
            env, "--data", str(words_file), "--trials", "2", "--steps", "2000", "--scheduler", "fifo",
            "--concurrency", "1", "--out", str(out), "--json", "--quiet",
        )  # fmt: skip

        def running_worker():
            for t in _summary(out)["trials"].values():
                if t["status"] == "running" and t.get("steps", 0) >= 200 and t.get("pid"):
                    return t
            return None

        victim = _wait_for(running_worker, proc)
        pid = victim["pid"]
        assert pid in descendants(proc.pid) and cmdline(pid).startswith("ray::"), cmdline(pid)
        os.kill(pid, signal.SIGKILL)
        result = _finish(proc, timeout=150)
    entry = _summary(out)["trials"][victim["id"]]
    assert entry["retries"] >= 1 and entry["status"] == "completed" and entry["steps"] == 2000
    assert result["completed"] == 2 and result["errored"] == 0


def test_driver_sigkill_then_resume_keeps_finished_trials(words_file, tmp_path):
    require_isolated_network()
    out = tmp_path / "sweep"
    with ray_env() as env:
        env["TUNE_GLOBAL_CHECKPOINT_S"] = "0.5"
        # Trials long enough (~several seconds each) that the kill lands while one runs, after another ended.
        args = ["--data", str(words_file), "--trials", "3", "--steps", "6000", "--scheduler", "fifo"]
        proc = start_sweep(env, *args, "--concurrency", "1", "--out", str(out), "--json", "--quiet")

        def settled():
            # A trial that ended more than 2 s ago is in Ray's saved state (saved every 0.5 s here).
            trials = _summary(out)["trials"].values()
            done = [t for t in trials if t["status"] == "completed" and t["finished"] < time.time() - 2]
            return done if len(done) < 3 and any(t["status"] == "running" for t in trials) else None

        before = {t["id"]: t for t in _wait_for(settled, proc, every=0.1)}
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait(30)
        resumed = start_sweep(env, "--resume", str(out), "--json", "--quiet")
        result = _finish(resumed, timeout=150)
    trials = _summary(out)["trials"]
    assert result["trials"] == 3 and result["completed"] == 3
    for tid, entry in before.items():  # finished before the kill: kept, not run again
        assert trials[tid]["started"] == entry["started"] and trials[tid]["pid"] == entry["pid"]


# A dashboard server in miniature: it starts a sweep the way the Sweep page does, says the driver's pid, waits.
SERVER = """
import sys, time
from dashboard.sweep_runs import SweepLauncher
from mlp_core import data
launcher = SweepLauncher()
launcher.start("server", data.load_words(sys.argv[1]), ["--preset", "fast", "--trials", "2", "--steps", "1000000",
               "--scheduler", "fifo"], concurrency=1)
print(next(iter(launcher._procs.values()))[0].pid, flush=True)
time.sleep(600)
"""


def test_a_dashboard_sweep_ends_with_its_server_even_one_killed(words_file, tmp_path):
    """The Sweep page's driver (and the Ray it started) must not outlive a server that died with SIGKILL."""
    require_isolated_network()
    with ray_env() as env:
        env["MLP_SWEEP_DIR"] = str(tmp_path / "sweeps")
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(words_file)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
        )
        driver = int(server.stdout.readline())
        (sweep_dir,) = (tmp_path / "sweeps").iterdir()

        def trial_running() -> bool:
            summary = sweep.read_summary(sweep_dir)
            return bool(summary) and any(t["status"] == "running" for t in summary["trials"].values())

        deadline = time.monotonic() + 90
        while not trial_running():
            assert time.monotonic() < deadline and server.poll() is None, "the sweep never started a trial"
            time.sleep(0.2)
        server.kill()  # SIGKILL: no atexit, nothing of the server runs again
        server.wait(10)
        marker = f"HOME={env['HOME']}"
        deadline = time.monotonic() + 90
        while marked_pids(marker):
            assert time.monotonic() < deadline, [cmdline(p) for p in marked_pids(marker)]
            time.sleep(0.5)
        stat = Path(f"/proc/{driver}/stat")
        # Gone, or a zombie waiting for whoever adopted it (its killed parent can no longer reap it).
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")


# ---------------------------------------------------------------------------- the page and its charts (no Ray)
def fake_trial(tid: str, status: str, devs: list[float], lr: float, optimizer: str = "adamw") -> dict:
    """A trial as mlp_core.sweep writes it into summary.json."""
    curve = [[100 * (i + 1), d, 1000.0 + i] for i, d in enumerate(devs)]
    reason = "stopped early by the scheduler" if status == "stopped" else None
    return {
        "id": tid, "status": status, "steps": 100 * len(devs), "curve": curve, "dev_loss": devs[-1],
        "config": {"lr": lr, "optimizer": optimizer}, "reason": reason,
    }  # fmt: skip


TRIALS = [
    fake_trial("a_00000", "completed", [2.6, 2.4, 2.3], 0.01),
    fake_trial("a_00001", "stopped", [3.1], 1e-5, "sgd"),
    fake_trial("a_00002", "completed", [2.5, 2.2, 2.1], 0.02),
]


def test_curves_highlight_the_best_and_dim_stopped_trials():
    from dashboard import sweep_charts

    fig = sweep_charts.curves_figure(TRIALS, "a_00002")
    by_name = {t.name.split(" ")[0]: t for t in fig.data}
    assert by_name["a_00002"].line.color == sweep_charts.ORANGE and by_name["a_00002"].line.width == 4
    assert by_name["a_00001"].opacity < 1 and by_name["a_00001"].line.dash == "dot"
    # Dimmed but readable: a trial stopped at its first evaluation is one dot, which must not be a faint speck.
    assert by_name["a_00001"].opacity >= 0.5 and by_name["a_00001"].marker.size >= 7
    assert fig.data[-1].name.startswith("a_00002")  # drawn last, on top
    assert list(by_name["a_00002"].y) == [2.5, 2.2, 2.1]


def test_best_so_far_only_falls_and_parallel_coordinates_encode_choices():
    from dashboard import sweep_charts

    best = sweep_charts.best_so_far_figure(TRIALS, started=1000.0).data[0]
    assert all(b <= a for a, b in zip(best.y, best.y[1:], strict=False)) and best.y[-1] == 2.1
    par = sweep_charts.parallel_figure(TRIALS, ["lr", "optimizer"])
    titles = [a.text for a in par.layout.annotations if a.text.startswith("<b>")]
    assert titles == ["<b>lr (log)</b>", "<b>optimizer</b>", "<b>dev loss</b>"]
    ticks = {a.text for a in par.layout.annotations if not a.text.startswith("<b>")}
    assert {"adamw", "sgd"} <= ticks
    lines = {t.name: t for t in par.data if t.name and t.name.startswith("a_")}
    assert [lines[i].y[-1] for i in ("a_00000", "a_00001", "a_00002")] == [
        pytest.approx(0.2),
        1,
        0,
    ]  # dev 2.3, 3.1, 2.1
    rows = sweep_charts.trial_rows(TRIALS, ["lr"])
    assert [r["trial"] for r in rows] == ["a_00002", "a_00000", "a_00001"]
    assert rows[-1]["stopped early"] == "stopped early by the scheduler"


def test_parallel_coordinates_are_readable_lines_with_round_ticks():
    from dashboard import sweep_charts

    trials = [
        {**fake_trial(f"b_{i:05d}", status, [dev], lr), "config": {"lr": lr, "hidden": hidden, "dropout": drop}}
        for i, (status, dev, lr, hidden, drop) in enumerate(
            [("completed", 2.1333, 0.0129, 108, 0.05), ("completed", 2.2112, 0.00733, 44, 0.0),
             ("stopped", 2.3012, 0.0332, 63, 0.125), ("stopped", 2.7663, 0.0398, 314, 0.2)]
        )
    ]  # fmt: skip
    fig = sweep_charts.parallel_figure(trials, ["lr", "hidden", "dropout"])
    ticks = [a.text for a in fig.layout.annotations if not a.text.startswith("<b>")]
    assert ticks == [
        "0.01",
        "0.02",
        "0.03",
        "100",
        "200",
        "300",
        "0",
        "0.05",
        "0.1",
        "0.15",
        "0.2",
        "2.2",
        "2.4",
        "2.6",
    ]
    lines = {t.name: t for t in fig.data if t.name and t.name.startswith("b_")}
    assert len(lines) == 4 and all(t.line.width >= 2.5 for t in lines.values())  # no 1-px hairlines
    stopped = [lines["b_00002"], lines["b_00003"]]
    assert all(t.line.dash == "dot" and 0.5 <= t.opacity < 1 for t in stopped)  # dimmed, still readable
    assert all(t.line.dash == "solid" and t.opacity == 1 for t in (lines["b_00000"], lines["b_00001"]))
    assert fig.data[len(lines) - 1].name == "b_00000"  # the best is drawn last, on top
    assert sweep_charts.short_number(1e-5) == "1e-5" and sweep_charts.short_number(-1.22394) == "-1.22"


def fake_sweep(
    root: Path,
    name: str,
    *,
    state: str = "finished",
    owner: str | None = None,
    best_file: bool = True,
    words: list[str] | None = None,
    data_path: str | None = None,
    **summary_extra,
) -> Path:
    """A sweep directory as the driver leaves it: settings, summary (TRIALS), best.safetensors; owned by a viewer
    (a page-started sweep, with its words.txt) or by nobody (the CLI's)."""
    from dashboard import sweep_runs
    from mlp_core.checkpoint import checkpoint_bytes
    from mlp_core.model import build_model

    out = root / name
    out.mkdir(parents=True)
    settings = sweep.SweepSettings(data=data_path, trials=3, steps=300,
                                   params=["lr=1e-5:0.05:log", "optimizer=sgd|adamw"])  # fmt: skip
    (out / sweep.SETTINGS_FILE).write_text(json.dumps(settings.__dict__))
    best = {"id": "a_00002", "dev_loss": 2.1, "steps": 300, "config": TRIALS[2]["config"]}
    summary = {"settings": settings.__dict__, "state": state, "started": 1000.0, "best": best,
               "trials": {t["id"]: t for t in TRIALS}, **summary_extra}  # fmt: skip
    (out / sweep.SUMMARY_FILE).write_text(json.dumps(summary))
    words = words or data.builtin_words()[:200]
    if owner is not None:
        (out / sweep_runs.OWNER_FILE).write_text(json.dumps({"owner": sweep_runs.owner_tag(owner)}))
        data.write_words(words, out / sweep.WORDS_FILE)
    if best_file:
        cfg = PRESETS["fast"].replace(hidden=16, steps=300, device="cpu")
        vocab = data.Vocab.from_words(words)
        raw = checkpoint_bytes(build_model(vocab.size, cfg), cfg, vocab, {"step": 300, "dev_loss": 2.1})
        (out / sweep.BEST_FILE).write_bytes(raw)
    return out


@pytest.fixture
def page(tmp_path, monkeypatch):
    """The Sweep page's AppTests on a sweeps folder of their own, with a driver that only sleeps (no Ray):
    `page(query)` opens a new browser on the Sweep page; `spawned` lists the commands the launcher ran."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import state, sweep_runs

    monkeypatch.setattr(sweep_runs, "SWEEPS_ROOT", tmp_path / "sweeps")
    spawned: list[list[str]] = []
    procs: list[subprocess.Popen] = []

    def spawn(self, cmd, out):
        spawned.append(cmd)
        procs.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], start_new_session=True))
        return procs[-1]

    monkeypatch.setattr(sweep_runs.SweepLauncher, "_spawn", spawn)
    st.cache_resource.clear()
    state.registry.clear()

    def open_page(**query) -> AppTest:
        at = AppTest.from_file("../app.py", default_timeout=60)
        at.query_params = dict(query)
        at.run()
        at.switch_page("pages/7_sweep.py").run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    open_page.spawned, open_page.procs, open_page.root = spawned, procs, tmp_path / "sweeps"
    open_page.launcher = lambda: next(iter(launchers))  # the page's (cached) launcher
    launchers: list = []
    real_init = sweep_runs.SweepLauncher.__init__

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        launchers.insert(0, self)

    monkeypatch.setattr(sweep_runs.SweepLauncher, "__init__", init)
    try:
        yield open_page
    finally:
        for p in procs:
            with contextlib.suppress(OSError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)
        reg = state.registry()
        reg.stop_reaper()
        reg.release_all()
        st.cache_resource.clear()
        state.registry.clear()


def viewer(at) -> str:
    from dashboard import state

    return at.session_state[state.VIEWER]


def page_text(at) -> str:
    return " | ".join(str(e.value) for kind in ("markdown", "info", "warning", "error", "success", "caption")
                      for e in getattr(at, kind))  # fmt: skip


def test_sweep_page_shows_a_past_sweep(page):
    """The page reopens a sweep from its directory alone: table, charts, and the best trial's buttons."""
    at = page()
    out = fake_sweep(page.root, "sweep-20260101-000000-abcd", owner=viewer(at))
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="sweep_view").value == out.name
    assert "**Best trial** a_00002: dev 2.1000" in " ".join(m.value for m in at.markdown)
    labels = [b.label for b in at.button]
    assert "Use these settings" in labels and "Load best model" in labels
    table = at.table[0].value
    assert list(table["trial"]) == ["a_00002", "a_00000", "a_00001"]
    at.button(key="btn_sweep_use").click().run()
    assert at.session_state["hp_lr"] == 0.02 and at.session_state["hp_optimizer"] == "adamw"


# ---------------------------------------------------------------------------- issue 15: sweeps belong to a browser
def test_a_sweep_is_seen_stopped_and_loaded_only_by_the_browser_that_started_it(page):
    """#2: B sweeps on its uploaded words; C (no link) sees none of it, cannot stop it, cannot load its model."""
    from dashboard import sweep_runs

    b = page(data="builtin")
    b.number_input(key="sweep_trials").set_value(2)
    b.number_input(key="sweep_steps").set_value(300)
    b.button(key="btn_sweep_start").click().run()
    assert not b.error, [e.value for e in b.error]
    (mine,) = [d for d in page.root.iterdir()]
    assert (
        sweep_runs.owner_of(mine) == sweep_runs.owner_tag(viewer(b))
        and viewer(b) not in (mine / "owner.json").read_text()
    )
    proc = page.procs[-1]
    (mine / sweep.SUMMARY_FILE).write_text(json.dumps({"state": "running", "trials": {}, "settings": {}}))
    old = fake_sweep(page.root, "sweep-20250101-000000-b0b0", owner=viewer(b))  # B's finished one, loadable

    c = page(data="builtin")
    assert not any(old.name in str(o) or mine.name in str(o) for s in c.selectbox for o in s.options)
    assert "No sweeps yet" in page_text(c) and "Load best model" not in [x.label for x in c.button]
    assert c.button(key="btn_sweep_stop").disabled
    sweep_runs.SweepLauncher.stop(c_launcher := page.launcher(), viewer(c))  # even called for C: nothing of B's
    assert c_launcher.running(viewer(b)) == mine and proc.poll() is None
    with pytest.raises(sweep.SweepError):
        sweep_runs.SweepLauncher(page.root).delete(viewer(c), old)
    assert (old / sweep.WORDS_FILE).exists()

    b.run()
    assert mine.name in b.selectbox(key="sweep_view").options and old.name in b.selectbox(key="sweep_view").options
    b.button(key="btn_sweep_stop").click().run()
    # Tune stops gracefully (trials end, state saved, Ray shut down): seen over 30 s in a loaded full suite.
    assert proc.wait(120) is not None  # B's own Stop reaches its driver


def test_a_dashboard_sweeps_words_go_with_it_and_after_the_retention_limit(page, monkeypatch):

    at = page()
    old = fake_sweep(page.root, "sweep-20240101-000000-0001", owner=viewer(at))
    cli = fake_sweep(page.root, "mine", best_file=False)  # the CLI's: the operator's own, never purged
    week_ago = time.time() - 8 * 86400
    for p in (old, cli, *old.iterdir(), *cli.iterdir()):
        os.utime(p, (week_ago, week_ago))
    monkeypatch.setenv("MLP_SWEEP_RETENTION_DAYS", "7")
    recent = fake_sweep(page.root, "sweep-20260101-000000-0002", owner=viewer(at))
    at.run()
    assert not old.exists() and cli.exists() and (recent / sweep.WORDS_FILE).exists()
    at.selectbox(key="sweep_view").set_value(recent.name).run()
    at.button(key="btn_sweep_delete").click().run()
    assert not recent.exists(), page_text(at)


# ---------------------------------------------------------------------------- issue 15: sweeps within the job cap
def test_a_sweeps_trials_take_slots_of_the_job_cap(page, monkeypatch):
    """#3: with MLP_MAX_JOBS taken by A's job, B's sweep is refused; with room, its concurrency is what is left."""
    from test_app import start_long_tiny

    from dashboard import state

    monkeypatch.setenv("MLP_MAX_JOBS", "1")
    a = page(data="builtin")
    start_long_tiny(a)
    b = page(data="builtin")
    b.number_input(key="sweep_trials").set_value(4)
    b.number_input(key="sweep_steps").set_value(300)
    b.button(key="btn_sweep_start").click().run()
    assert "the limit is 1" in page_text(b) and not page.spawned
    assert not page.root.exists() or not list(page.root.iterdir())  # no words left behind either

    state.registry().max_active_jobs = 3  # A's job takes 1: 2 are left for B's 4 trials
    b.button(key="btn_sweep_start").click().run()
    assert page.spawned, page_text(b)
    cmd = page.spawned[-1]
    assert int(cmd[cmd.index("--concurrency") + 1]) <= 2
    assert state.registry().active_jobs() == 1 + int(cmd[cmd.index("--concurrency") + 1])
    a.run()
    a.button(key="btn_start").click().run()  # A may still replace its own job (its slot is its own) ...
    c = page(data="builtin")
    c.button(key="btn_start").click().run()  # ... but a third session's Start is over the cap: it waits (issue 16)
    assert "queued**: position 1 of 1" in " ".join(e.value for e in c.sidebar.info)
    c.button(key="btn_cancel_queue").click().run()


def test_a_sweep_too_large_for_the_server_is_refused_with_the_limit(page, monkeypatch):
    monkeypatch.setenv("MLP_MAX_SWEEP_TRIAL_STEPS", "100000")
    at = page(data="builtin")
    at.number_input(key="sweep_trials").set_value(500)
    at.number_input(key="sweep_steps").set_value(200_000)
    at.button(key="btn_sweep_start").click().run()
    assert "MLP_MAX_SWEEP_TRIAL_STEPS" in page_text(at) and "100,000,000" in page_text(at) and not page.spawned


def test_the_memory_check_covers_every_trial_that_runs_at_once(monkeypatch):
    from mlp_core.model import estimate_memory_bytes

    settings = sweep.SweepSettings(trials=4, steps=10, concurrency=1, params=["hidden=512", "batch_size=4096"])
    need = estimate_memory_bytes(27, settings.base_config().replace(hidden=512, batch_size=4096))
    monkeypatch.setenv("MLP_MAX_MEMORY_GB", str(need * 2.5 / 1e9))
    sweep.prepare(settings)  # one at a time fits
    with pytest.raises(ValueError, match="4 trials at once"):
        sweep.prepare(sweep.SweepSettings(**{**settings.__dict__, "concurrency": 4}))


# ---------------------------------------------------------------------------- issue 15: a dead driver
def test_a_sweep_whose_driver_was_killed_says_interrupted_and_offers_resume_not_load(page):
    """#4: summary.json says running, its driver is gone (SIGKILL: nothing updated it), no best.safetensors."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    at = page()
    out = fake_sweep(page.root, "sweep-20260101-000000-dead", state="running", owner=viewer(at), best_file=False,
                     driver_pid=dead.pid, driver_start=12345)  # fmt: skip
    at.run()
    assert "interrupted: 3 / 3 trials ended" in " ".join(p.proto.text for p in at.get("progress")), page_text(at)
    assert "driver is gone" in page_text(at)
    labels = [b.label for b in at.button]
    assert "Load best model" not in labels and "Resume sweep" in labels
    at.button(key="btn_sweep_resume").click().run()
    assert page.spawned and page.spawned[-1][page.spawned[-1].index("--resume") + 1] == str(out), page_text(at)

    live = fake_sweep(page.root, "sweep-20260101-000000-live", state="running", owner=viewer(at), best_file=False,
                      driver_pid=os.getpid(), driver_start=sweep.process_start(os.getpid()))  # fmt: skip
    at.run().selectbox(key="sweep_view").set_value(live.name).run()
    assert "running: 3 / 3" in " ".join(p.proto.text for p in at.get("progress"))
    assert "Resume sweep" not in [b.label for b in at.button]


# ---------------------------------------------------------------------------- issue 15: bad cells, the CLI's sweeps
@pytest.mark.parametrize("cell", [None, math.nan, "abc", math.inf, 1e308])
def test_a_bad_cell_of_the_search_space_is_a_message(cell):
    """#6: blank (None / NaN), text, infinite or huge: a SweepError naming the setting, never a traceback."""
    from dashboard import sweep_runs

    rows = [{"setting": "hidden", "sweep": True, "low": cell, "high": 64, "log": False}]
    with pytest.raises(sweep.SweepError, match="hidden"):
        params = sweep_runs.space_specs(rows, {}, PRESETS["fast"], PRESETS["fast"])
        sweep.check_space([sweep.parse_param(p) for p in params], PRESETS["fast"])
    for trials, steps in [(math.nan, 300), ("x", 300), (2, None), (10**12, 300), (2.5, 300)]:
        with pytest.raises(sweep.SweepError):
            sweep_runs.check_size(trials, steps)


def test_a_cli_sweep_in_the_sweeps_folder_loads_on_the_sweep_page(page, words_file):
    """#8: `sweep --out sweeps/mine` (no words.txt, no owner): "Load best model" trains on sweep.json's data."""
    at = page()
    fake_sweep(page.root, "mine", data_path=str(words_file), words=data.load_words(words_file))
    at.run()
    at.button(key="btn_sweep_load").click().run()
    assert "Loaded the best of mine" in page_text(at), page_text(at)
